import math

import pyro
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam

from pyro_vae import MLP, VAE, Bernoulli, DiagonalNormal, MixtureOfGaussians, StandardNormal, UserError, VampPrior
from pyro_vae.families.posteriors import IAF, FullNormal
from pyro_vae.families.priors import REGISTRY
from pyro_vae.specs import Context, build


def _vamp_vae(posterior=None, z_dim=3, data_dim=8, k=4):
    posterior = posterior or DiagonalNormal()
    return VAE(MLP(data_dim, [16], posterior.num_params(z_dim)), MLP(z_dim, [16], data_dim),
               prior=VampPrior(z_dim, k, data_dim), likelihood=Bernoulli(), posterior=posterior)


def test_one_component_mixture_at_the_origin_is_the_standard_normal():
    mog = MixtureOfGaussians(z_dim=4, num_components=1)
    with torch.no_grad():
        mog.loc.zero_()
        mog.log_scale.zero_()
    z = torch.randn(5, 7, 4)  # (P, B, Z)
    assert torch.allclose(mog().log_prob(z), StandardNormal(4)().log_prob(z), atol=1e-5)


def test_mixture_log_prob_is_the_log_sum_of_weighted_components():
    mog = MixtureOfGaussians(z_dim=3, num_components=5)
    with torch.no_grad():
        mog.logits.normal_()
        mog.log_scale.normal_(0, 0.3)
    z = torch.randn(6, 3)
    weights = torch.softmax(mog.logits, 0)
    density = sum(weights[k] * torch.distributions.MultivariateNormal(
        mog.loc[k], torch.diag(mog.log_scale[k].exp() ** 2)).log_prob(z).exp() for k in range(5))
    assert torch.allclose(mog().log_prob(z), density.log(), atol=1e-4)


@pytest.mark.parametrize("make", [lambda: MixtureOfGaussians(3, 4), lambda: _vamp_vae().prior],
                         ids=["mog", "vamp"])
def test_mixture_priors_broadcast_under_the_data_and_particle_plates(make):
    prior = make()
    d = prior()
    assert d.batch_shape == () and d.event_shape == (3,)
    with pyro.plate("particles", 5, dim=-2), pyro.plate("data", 7, dim=-1):
        trace = pyro.poutine.trace(lambda: pyro.sample("z", prior())).get_trace()
    trace.compute_log_prob()
    assert trace.nodes["z"]["value"].shape == (5, 7, 3) and trace.nodes["z"]["log_prob"].shape == (5, 7)
    assert torch.isfinite(trace.nodes["z"]["log_prob"]).all()
    assert not d.has_rsample  # never needed: the guide draws z, the prior only scores it


@pytest.mark.parametrize("posterior", [DiagonalNormal(), FullNormal(), None], ids=["diag", "full", "iaf"])
def test_vamp_prior_is_the_average_posterior_at_the_pseudo_inputs(posterior):
    torch.manual_seed(0)
    vae = _vamp_vae(posterior or IAF(3, 2))
    if posterior is None:  # make the flow non-trivial
        with torch.no_grad():
            for p in vae.posterior.parameters():
                p.normal_(0, 0.3)
    z = torch.randn(2, 5, 3)  # (P, B, Z)
    u = vae.prior.pseudo_data()  # (K, D)
    per_component = torch.stack([vae.posterior_at(u[k : k + 1]).log_prob(z) for k in range(4)])  # (K, P, B)
    expected = torch.logsumexp(per_component, 0) - math.log(4)
    assert torch.allclose(vae.prior().log_prob(z), expected, atol=1e-4)


def test_pseudo_inputs_are_in_the_data_range_and_not_a_copy_of_the_encoder():
    vae = _vamp_vae()
    with torch.no_grad():
        vae.prior.pseudo_inputs[0, 0] = 3.0
    u = vae.prior.pseudo_data()
    assert u.min() >= 0 and u.max() <= 1 and u[0, 0] == 1
    names = dict(vae.named_parameters())
    assert "prior.pseudo_inputs" in names and not any(n.startswith("prior.encoder") for n in names)
    assert not any(k.startswith("prior.") and k != "prior.pseudo_inputs" and "logits" not in k
                   for k in vae.state_dict())


@pytest.mark.parametrize("spec", ["mog:3", "vamp:4"])
def test_learnable_prior_parameters_are_trained_by_pyro_svi(spec):
    torch.manual_seed(0)
    prior = build(REGISTRY, spec, "prior", Context(z_dim=3, data_dim=8))
    vae = VAE(MLP(8, [16], 6), MLP(3, [16], 8), prior=prior, likelihood=Bernoulli(), posterior=DiagonalNormal())
    before = {n: p.detach().clone() for n, p in prior.named_parameters()}
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), Trace_ELBO())
    svi.step(torch.rand(10, 8).round())
    store = dict(pyro.get_param_store().named_parameters())
    for name, value in prior.named_parameters():
        assert f"{vae.pyro_name}.prior$$${name}" in store  # pyro.module's naming
        assert not torch.equal(before[name], value)


def test_unbound_vamp_prior_says_how_to_use_it():
    with pytest.raises(RuntimeError, match="VAE\\(prior=...\\)"):
        VampPrior(3, 4, 8)()


@pytest.mark.parametrize("spec, kind", [("normal", StandardNormal), ("mog:10", MixtureOfGaussians),
                                        ("vamp:500", VampPrior)])
def test_specs(spec, kind):
    prior = build(REGISTRY, spec, "prior", Context(z_dim=2, data_dim=5))
    assert isinstance(prior, kind) and prior.z_dim == 2
    if kind is not StandardNormal:
        assert prior.num_components == int(spec.split(":")[1])


@pytest.mark.parametrize("spec, message", [("mog", "needs its argument"), ("vamp:0", "positive int"),
                                           ("mog:2.5", "positive int"), ("normal:1", "no argument"),
                                           ("flow", "choose one of .*mog:K.*vamp:K")])
def test_spec_errors(spec, message):
    with pytest.raises(UserError, match=message):
        build(REGISTRY, spec, "prior", Context(z_dim=2, data_dim=5))

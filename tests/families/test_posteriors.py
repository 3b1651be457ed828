import pyro
import pyro.distributions as dist
import pytest
import torch
from torch.distributions import kl_divergence

from pyro_vae import (
    IAF,
    MLP,
    VAE,
    Bernoulli,
    ContextIAF,
    Delta,
    DiagonalNormal,
    FullNormal,
    LowRankNormal,
    StandardNormal,
    VampPrior,
)
from pyro_vae.errors import UserError
from pyro_vae.families.posteriors import REGISTRY
from pyro_vae.specs import Context, build

Z = 3
FAMILIES = {"diag": DiagonalNormal(), "lowrank:2": LowRankNormal(2), "full": FullNormal(),
            "iaf:2": ContextIAF(Z, 2), "iaf-shared:2": IAF(Z, 2), "delta": Delta()}


def _randomize(module, std=0.3):
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, std)


@pytest.mark.parametrize("name", FAMILIES)
def test_shapes_rsample_and_finite_log_prob(name):
    family = FAMILIES[name]
    out = torch.randn(4, family.num_params(Z))
    q = family(out)
    assert q.batch_shape == (4,) and q.event_shape == (Z,) and q.has_rsample
    z = q.rsample((5,))  # (P, B, Z)
    assert z.shape == (5, 4, Z) and torch.isfinite(q.log_prob(z)).all() and q.log_prob(z).shape == (5, 4)
    assert q.expand((5, 4)).batch_shape == (5, 4)
    assert family.mean(out).shape == (4, Z)
    out.requires_grad_(True)  # reparameterised: z carries the encoder's gradient
    family(out).rsample().sum().backward()
    assert out.grad.abs().sum() > 0


def test_full_rank_with_diagonal_covariance_is_the_diagonal_normal():
    full, diag = FullNormal(), DiagonalNormal()
    head = torch.randn(6, 2 * Z)
    out = torch.cat([head, torch.zeros(6, Z * (Z - 1) // 2)], -1)  # zero strictly-lower triangle
    z = torch.randn(6, Z)
    assert torch.allclose(full(out).log_prob(z), diag(head).log_prob(z), atol=1e-5)
    pyro.set_rng_seed(1)
    a = full(out).rsample()
    pyro.set_rng_seed(1)
    assert torch.allclose(a, diag(head).rsample(), atol=1e-6)  # the same eps gives the same z
    assert torch.allclose(kl_divergence(full(out), StandardNormal(Z)()), kl_divergence(diag(head), StandardNormal(Z)()),
                          atol=1e-5)


def test_full_rank_cholesky_layout():
    full = FullNormal()
    assert full.num_params(4) == 4 + 4 + 6
    out = torch.randn(2, full.num_params(4))
    loc, tril = full.loc_tril(out)
    rows, cols = torch.tril_indices(4, 4, offset=-1)
    assert torch.equal(tril[:, rows, cols], out[:, 8:]) and (tril.diagonal(dim1=-2, dim2=-1) > 0).all()
    assert torch.equal(tril.triu(1), torch.zeros_like(tril)) and torch.equal(loc, out[:, :4])
    assert torch.allclose(full(out).covariance_matrix, tril @ tril.transpose(-1, -2), atol=1e-5)


def test_low_rank_with_zero_factor_is_the_diagonal_normal():
    head, z = torch.randn(6, 2 * Z), torch.randn(6, Z)
    out = torch.cat([head, torch.zeros(6, 2 * Z)], -1)
    assert torch.allclose(LowRankNormal(2)(out).log_prob(z), DiagonalNormal()(head).log_prob(z), atol=1e-5)
    w = torch.randn(6, Z * 2)
    q = LowRankNormal(2)(torch.cat([head, w], -1))
    w = w.reshape(6, Z, 2)
    expected = w @ w.transpose(-1, -2) + torch.diag_embed(DiagonalNormal().loc_scale(head)[1] ** 2)
    assert torch.allclose(q.covariance_matrix, expected, atol=1e-5)


@pytest.mark.parametrize("name", ["lowrank:2", "full"])
def test_registered_kl_to_a_diagonal_normal_equals_torch_gaussian_kl(name):
    q = FAMILIES[name](torch.randn(5, FAMILIES[name].num_params(Z)))
    loc, scale = torch.randn(Z), torch.rand(Z) + 0.5
    p_diag = dist.Normal(loc, scale).to_event(1)
    p_mvn = dist.MultivariateNormal(loc, torch.diag(scale**2))
    assert torch.allclose(kl_divergence(q, p_diag), kl_divergence(q, p_mvn), atol=1e-4)
    with pytest.raises(NotImplementedError):  # only Normal bases: a Laplace prior has no such formula here
        kl_divergence(q, dist.Laplace(loc, scale).to_event(1))


def test_iaf_with_zero_weights_is_the_identity():
    iaf, diag = IAF(Z, 2), DiagonalNormal()
    out, z = torch.randn(6, 2 * Z), torch.randn(6, Z)
    assert all(torch.equal(f(z), z) for f in iaf.flows)  # fresh IAF: last MADE layers start at zero
    pyro.set_rng_seed(2)
    a = iaf(out).rsample()
    pyro.set_rng_seed(2)
    assert torch.equal(a, diag(out).rsample())
    assert torch.allclose(iaf(out).log_prob(z), diag(out).log_prob(z), atol=1e-6)
    assert torch.equal(iaf.mean(out), diag.mean(out))


def test_iaf_log_prob_is_the_change_of_variables():
    """log q(z) = log q0(z0) - log|det dz/dz0|, with the Jacobian from autograd, for a trained-looking flow."""
    torch.manual_seed(0)
    iaf = IAF(Z, 2)
    _randomize(iaf)
    out = torch.randn(1, 2 * Z)
    base = DiagonalNormal()(out)
    z0 = base.sample()

    def flow(v):
        for f in iaf.flows:
            v = f(v)
        return v

    z = flow(z0)
    jac = torch.autograd.functional.jacobian(lambda v: flow(v.unsqueeze(0)).squeeze(0), z0.squeeze(0))
    expected = base.log_prob(z0) - torch.linalg.slogdet(jac)[1]
    fresh = z.clone()  # not the flow's cached output: scored through the inverse
    assert torch.allclose(iaf(out).log_prob(fresh), expected, atol=1e-4)
    one = iaf.flows[0]  # identity order: z_i depends on z0_{<=i} only, a lower-triangular Jacobian
    jac1 = torch.autograd.functional.jacobian(lambda v: one(v.unsqueeze(0)).squeeze(0), z0.squeeze(0))
    assert torch.equal(jac1.triu(1), torch.zeros(Z, Z)) and jac1.tril(-1).abs().sum() > 0


def test_iaf_cached_and_inverted_log_probs_agree():
    torch.manual_seed(1)
    iaf = IAF(Z, 3)
    _randomize(iaf)
    q = iaf(torch.randn(4, 2 * Z))
    z = q.rsample((2,))  # (P, B, Z), cached by each flow
    assert torch.allclose(q.log_prob(z), q.log_prob(z.clone()), atol=1e-4)


def test_iaf_parameters_are_registered_by_the_guide():
    iaf = IAF(Z, 2)
    vae = VAE(MLP(8, [16], iaf.num_params(Z)), MLP(Z, [16], 8), prior=StandardNormal(Z), likelihood=Bernoulli(),
              posterior=iaf)
    pyro.poutine.trace(vae.guide).get_trace(torch.rand(3, 8))
    names = set(pyro.get_param_store().keys())
    assert sum(n.startswith(f"{vae.pyro_name}.posterior$$$flows") for n in names) == len(list(iaf.parameters()))


# --- the context-conditioned IAF (Kingma et al. 2016), spec iaf:N ---------------------------------------

def _context_flow(iaf, context):
    def flow(v):
        for t in iaf.transforms(context):
            v = t(v)
        return v
    return flow


def test_context_iaf_log_prob_is_the_change_of_variables():
    """log q(z | x) = log N(z0; mu, sigma^2) - log|det dz/dz0|, the Jacobian by autograd, per point, both
    for the flow's own draw (cached) and for the same z scored afresh (through the inverse)."""
    torch.manual_seed(0)
    iaf = ContextIAF(Z, 2, context_dim=4)
    _randomize(iaf)
    out = torch.randn(3, iaf.num_params(Z))  # (B, 2 Z + C)
    assert iaf.num_params(Z) == 2 * Z + 4
    base_out, context = iaf.split(out)
    base = DiagonalNormal()(base_out)
    pyro.set_rng_seed(5)
    q = iaf(out)
    z = q.rsample()  # (B, Z)
    pyro.set_rng_seed(5)
    z0 = base.rsample()
    for b in range(3):
        flow = _context_flow(iaf, context[b : b + 1])
        assert torch.allclose(flow(z0[b : b + 1]), z[b : b + 1], atol=1e-5)
        jac = torch.autograd.functional.jacobian(lambda v, flow=flow: flow(v.unsqueeze(0)).squeeze(0), z0[b])
        expected = base.log_prob(z0)[b] - torch.linalg.slogdet(jac)[1]
        assert torch.allclose(q.log_prob(z)[b], expected, atol=1e-4)
        assert torch.allclose(iaf(out).log_prob(z.clone().detach())[b], expected, atol=1e-4)  # the inverse
        first = iaf.transforms(context[b : b + 1])[0]  # identity order: lower-triangular Jacobian
        jac1 = torch.autograd.functional.jacobian(lambda v, first=first: first(v.unsqueeze(0)).squeeze(0), z0[b])
        assert torch.equal(jac1.triu(1), torch.zeros(Z, Z)) and jac1.tril(-1).abs().sum() > 0


def test_context_iaf_steps_read_the_context():
    torch.manual_seed(1)
    iaf = ContextIAF(Z, 2)
    _randomize(iaf)
    out = torch.randn(1, iaf.num_params(Z)).expand(2, -1).clone()
    out[1, 2 * Z:] += 1.0  # same base Normal, another context
    z = torch.randn(1, Z).expand(2, Z)
    log_q = iaf(out).log_prob(z)
    assert abs(log_q[0] - log_q[1]) > 1e-3 and not torch.allclose(iaf.mean(out)[0], iaf.mean(out)[1])


def test_context_iaf_with_zero_initialised_layers_is_the_base_normal():
    iaf, diag = ContextIAF(Z, 3), DiagonalNormal()
    out = torch.randn(6, iaf.num_params(Z))
    base_out = out[:, : 2 * Z]
    z = torch.randn(4, 6, Z)  # (P, B, Z): the context broadcasts over particles
    assert all(torch.equal(t(z), z) for t in iaf.transforms(out[:, 2 * Z :]))
    pyro.set_rng_seed(2)
    a = iaf(out).rsample((4,))
    pyro.set_rng_seed(2)
    assert torch.equal(a, diag(base_out).rsample((4,)))
    assert torch.allclose(iaf(out).log_prob(z), diag(base_out).log_prob(z), atol=1e-6)
    assert torch.equal(iaf.mean(out), diag.mean(base_out))


def test_vamp_prior_refuses_the_context_iaf_and_keeps_the_shared_one():
    from pyro_vae.errors import UserError

    for posterior, refused in ((ContextIAF(Z, 2), True), (IAF(Z, 2), False)):
        make = lambda posterior=posterior: VAE(MLP(8, [16], posterior.num_params(Z)), MLP(Z, [16], 8),  # noqa: E731
                           prior=VampPrior(Z, 4, 8), likelihood=Bernoulli(), posterior=posterior)
        if refused:
            with pytest.raises(UserError, match=r"vamp:4 .* \(data point, pseudo-input\) pair; use iaf-shared:N"):
                make()
        else:
            make()
    assert not ContextIAF.cheap_density and IAF.cheap_density and DiagonalNormal.cheap_density


def test_context_iaf_trains_through_fit_and_evaluate(digits):
    """fit raises the test ELBO; the bound report is finite, its gap non-negative and the ELBO within its
    Monte-Carlo error of the cached one-draw estimate."""
    from pyro_vae import dataset_statistics, evaluate_elbo, fit, make_elbo, summarise

    torch.manual_seed(0)
    iaf = ContextIAF(4, 2)
    vae = VAE(MLP(64, [64], iaf.num_params(4)), MLP(4, [64], 64), prior=StandardNormal(4), likelihood=Bernoulli(),
              posterior=iaf)
    before = evaluate_elbo(vae, digits.x_test)["elbo"]
    history = fit(vae, digits, make_elbo("trace"), epochs=6, batch_size=64, lr=3e-3, quiet=True)
    assert history[-1]["test_elbo"] > before + 5
    assert any(p.abs().sum() > 0 for f in iaf.flows for p in f.nn.layers[-1].parameters())  # the steps moved
    pyro.set_rng_seed(0)
    report = summarise(dataset_statistics(vae.model, vae.guide, digits.x_test[:40], 200, batch_size=20), 200)
    assert report["gap"] >= 0 and all(v == v for v in report["bound_curve"].values())
    assert abs(report["elbo"] - history[-1]["test_elbo"]) < 3.0


def test_delta_is_a_point_mass_with_the_negative_log_prior_as_kl():
    out = torch.randn(4, Z, requires_grad=True)
    q = Delta()(out)
    assert torch.equal(q.rsample(), out) and torch.equal(q.log_prob(out), torch.zeros(4))
    prior = StandardNormal(Z)()
    assert torch.allclose(kl_divergence(q, prior), -prior.log_prob(out))
    assert not Delta.has_density and DiagonalNormal.has_density


@pytest.mark.parametrize("spec, kind", [("diag", DiagonalNormal), ("lowrank:4", LowRankNormal), ("full", FullNormal),
                                        ("iaf:3", ContextIAF), ("iaf-shared:3", IAF), ("delta", Delta)])
def test_specs(spec, kind):
    family = build(REGISTRY, spec, "posterior", Context(z_dim=Z, data_dim=8))
    assert isinstance(family, kind)
    if kind in (IAF, ContextIAF):
        assert len(family.flows) == 3
    if kind is LowRankNormal:
        assert family.rank == 4 and family.num_params(Z) == Z * 6


@pytest.mark.parametrize("spec, message", [("lowrank", "needs its argument"), ("iaf:0", "positive int"),
                                           ("full:2", "no argument"), ("delta:1", "no argument"),
                                           ("flow", "choose one of diag|lowrank:R|full|iaf:N|delta")])
def test_spec_errors(spec, message):
    with pytest.raises(UserError, match=message):
        build(REGISTRY, spec, "posterior", Context(z_dim=Z, data_dim=8))

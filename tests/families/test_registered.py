"""One table of every registered family drives the same checks (as NumPyro's test_distributions does):
the spec round trip, shapes, samples inside the support, a finite log_prob, and the mean against a
sample mean where the family declares an exact one. A family registered later joins the table by
itself: the cases come from the registries, not from a list kept here."""

import pytest
import torch

import pyro_vae as pv
from pyro_vae.families import likelihoods, noises, posteriors, priors
from pyro_vae.specs import Context, Registry

Z, D, B, N = 3, 8, 4, 20000  # latent and data dimensions, batch, draws for sample means
CTX = Context(z_dim=Z, data_dim=D)


def cases(registry):
    return [spec for entry in registry.values() for spec in entry.examples()]


def _close_in_mean(samples, mean):
    """The sample mean of ``samples`` (N, ...) is within 5 standard errors of ``mean`` (...)."""
    se = samples.std(0) / samples.shape[0] ** 0.5
    return bool(((samples.mean(0) - mean).abs() <= 5 * se + 1e-4).all())


def test_every_kind_has_its_registry_and_its_names():
    assert {"normal", "mog", "vamp"} == set(priors.REGISTRY)
    assert {"diag", "lowrank", "full", "iaf", "iaf-shared", "delta"} == set(posteriors.REGISTRY)
    assert {"bernoulli", "cbernoulli", "normal", "normal-learned", "normal-hetero", "laplace",
            "dlogistic"} == set(likelihoods.REGISTRY)
    assert {"masking", "gaussian"} == set(noises.REGISTRY)
    for registry in (priors.REGISTRY, posteriors.REGISTRY, likelihoods.REGISTRY, noises.REGISTRY):
        assert isinstance(registry, Registry) and all(entry.help for entry in registry.values())


def test_a_name_cannot_be_registered_twice():
    registry = Registry("thing")
    registry.register("a", "first")(object)
    with pytest.raises(ValueError, match="thing 'a' is registered twice"):
        registry.register("a", "second")(dict)


@pytest.mark.parametrize("registry", [priors.REGISTRY, posteriors.REGISTRY, likelihoods.REGISTRY, noises.REGISTRY],
                         ids=lambda r: r.kind)
def test_spec_round_trip(registry):
    """Building a spec and writing it back gives the spec (its canonical form), for every name."""
    for spec in cases(registry):
        built = registry.build(spec, CTX)
        assert built.spec() == spec, (spec, built.spec())
        assert registry.build(built.spec(), CTX).spec() == spec


def test_the_round_trip_check_catches_a_drift():
    """A class that writes another spec than it was built from fails the check above."""
    lik = likelihoods.REGISTRY.build("normal-learned:0.05", CTX)
    lik.scale.min_scale = 0.01  # as if the class wrote its default back, whatever it was built with
    assert lik.spec() != "normal-learned:0.05"


def _vae(prior=None, posterior=None, likelihood=None):
    posterior = posterior or pv.DiagonalNormal()
    likelihood = likelihood or pv.Bernoulli()
    return pv.VAE(pv.MLP(D, [16], posterior.num_params(Z)), pv.MLP(Z, [16], likelihood.num_params(D)),
                  prior=prior or pv.StandardNormal(Z), likelihood=likelihood, posterior=posterior)


@pytest.mark.parametrize("spec", cases(priors.REGISTRY))
def test_prior(spec):
    torch.manual_seed(0)
    prior = priors.REGISTRY.build(spec, CTX)
    _vae(prior=prior)  # binds a prior built from the model's parts (the VampPrior)
    with torch.no_grad():
        p = prior()
        assert p.batch_shape == () and p.event_shape == (Z,)
        z = p.sample((N,))  # (N, Z)
        assert z.shape == (N, Z) and bool(p.support.check(z).all())
        assert bool(torch.isfinite(p.log_prob(z)).all())
        assert _close_in_mean(z, p.mean)


@pytest.mark.parametrize("spec", cases(posteriors.REGISTRY))
def test_posterior(spec):
    torch.manual_seed(0)
    family = posteriors.REGISTRY.build(spec, CTX)
    out = 0.5 * torch.randn(B, family.num_params(Z))  # (B, P) encoder outputs
    with torch.no_grad():
        q = family(out)
        assert q.batch_shape == (B,) and q.event_shape == (Z,)
        z = q.sample((N,))  # (N, B, Z)
        assert z.shape == (N, B, Z) and bool(torch.isfinite(z).all())
        assert bool(torch.isfinite(q.log_prob(z)).all())
        assert family.mean(out).shape == (B, Z)
        if family.mean_is_expectation:
            assert _close_in_mean(z, family.mean(out))


@pytest.mark.parametrize("spec", cases(likelihoods.REGISTRY))
def test_likelihood(spec):
    torch.manual_seed(0)
    lik = likelihoods.REGISTRY.build(spec, CTX)
    out = torch.randn(B, lik.num_params(D))  # (B, P) decoder outputs
    if spec.startswith("dlogistic"):
        out = 0.1 * out + 0.5  # locations inside [0, 1], moderate scales: draws are not all clipped
    with torch.no_grad():
        p = lik(out)
        assert p.batch_shape == (B,) and p.event_shape == (D,)
        x = p.sample((N,))  # (N, B, D)
        assert x.shape == (N, B, D) and bool(lik.support.check(x).all())
        lik.check_data(x[0])  # the family's own data check accepts its samples
        assert bool(torch.isfinite(p.log_prob(x)).all())
        assert _close_in_mean(x, lik.mean(out))


@pytest.mark.parametrize("spec", cases(noises.REGISTRY))
def test_noise(spec):
    torch.manual_seed(0)
    noise = noises.REGISTRY.build(spec, Context(z_dim=0, data_dim=D))
    x = torch.rand(B, D)
    corrupted = torch.stack([noise(x) for _ in range(4000)])  # (4000, B, D)
    assert corrupted.shape == (4000, B, D)
    kept = 1 - noise.nu if isinstance(noise, pv.Masking) else 1.0  # E[x~ | x]: masking scales x by 1 - nu
    assert _close_in_mean(corrupted, kept * x)

"""The exact gap of a discrete latent: log p(x) - ELBO(q) = KL(q || p(z | x)) point by point for any q,
and the importance-weighted bounds over an amortised guide converging to the exact log p(x)."""

import math

import pyro
import pytest
import torch
from pyro.infer import TraceEnum_ELBO

from pyro_vae import MLP, Bernoulli, MixtureModel, NormalHeteroscedastic, make_elbo
from pyro_vae.bounds import bound_curve, log_weights
from pyro_vae.diagnostics.exact_gap import exact_report, exact_statistics, exact_verdict
from pyro_vae.diagnostics.tightness import dataset_statistics, summarise


def _mixture(likelihood, k=5, d=8, encoder=True, seed=0):
    torch.manual_seed(seed)
    mix = MixtureModel(k, likelihood, d, encoder=MLP(d, [7], k).double() if encoder else None).double()
    with torch.no_grad():
        mix.decoder.table.normal_()
        mix.weights.logits.normal_()
    return mix


@pytest.mark.parametrize("likelihood", [Bernoulli(), NormalHeteroscedastic(0.1)], ids=["bernoulli", "normal-hetero"])
def test_gap_is_the_kl_to_the_posterior_for_an_arbitrary_q(likelihood):
    """Per point, to float64 precision: log p(x) (a loop over components with torch.distributions)
    minus the ELBO (Pyro's TraceEnum_ELBO, one point at a time) equals KL(q || p(z|x)) (torch's
    Categorical KL), for a q from a random encoder that knows nothing of the model."""
    mix = _mixture(likelihood)
    x = torch.bernoulli(torch.full((6, 8), 0.4, dtype=torch.float64))
    log_pi = torch.log_softmax(mix.weights.logits.detach(), -1)
    log_joint = torch.stack([likelihood(mix.decoder.table[k].detach()).log_prob(x) + log_pi[k] for k in range(5)], -1)
    log_px = torch.logsumexp(log_joint, -1)
    elbo = torch.tensor([-TraceEnum_ELBO(max_plate_nesting=1).loss(pyro.infer.config_enumerate(mix.model),
                                                                  pyro.infer.config_enumerate(mix.guide), x[i : i + 1])
                         for i in range(6)], dtype=torch.float64)
    q = torch.distributions.Categorical(logits=mix.guide_table(x).detach())
    posterior = torch.distributions.Categorical(logits=log_joint - log_px[:, None])
    kl = torch.distributions.kl_divergence(q, posterior)
    assert (kl > 0.01).all()  # an arbitrary q: a real gap
    assert torch.allclose(log_px - elbo, kl, atol=1e-12, rtol=0)
    stats = exact_statistics(mix, x, batch_size=4)
    assert torch.allclose(stats["log_likelihood"], log_px, atol=1e-12)
    assert torch.allclose(stats["elbo"], elbo, atol=1e-12)
    assert torch.allclose(stats["gap"], stats["kl_posterior"], atol=1e-12)


def test_the_exact_guide_has_no_gap():
    mix = _mixture(Bernoulli(), encoder=False)
    x = torch.bernoulli(torch.full((10, 8), 0.5, dtype=torch.float64))
    stats = exact_statistics(mix, x)
    assert stats["gap"].abs().max() < 1e-12 and stats["kl_posterior"].abs().max() < 1e-12
    report = exact_report(stats)
    assert exact_verdict(report)["level"] == "exact"


def test_iwae_over_the_amortised_guide_converges_to_the_exact_log_likelihood():
    """L_1 = the exact ELBO (up to Monte-Carlo error), L_K rises towards log p(x), and L_1000 is
    within 0.01 nats of it: a consistent estimate, as Burda et al.'s theorem says."""
    mix = _mixture(Bernoulli(), k=6)
    x = torch.bernoulli(torch.full((8, 8), 0.5, dtype=torch.float64))
    stats = exact_statistics(mix, x)
    pyro.set_rng_seed(0)
    with torch.no_grad():
        lw = log_weights(mix.model, mix.guide, x, 40000).double()  # (S, B)
    curve = bound_curve(lw, [1, 10, 100, 1000])
    errors = [(stats["log_likelihood"] - curve[k]).mean().item() for k in (1, 10, 100, 1000)]
    assert errors[0] == pytest.approx(stats["gap"].mean().item(), abs=0.05)
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False)) and errors[0] > 0.3
    assert abs(errors[-1]) < 0.01


def test_evaluate_report_beside_the_sampled_one():
    mix = _mixture(Bernoulli())
    x = torch.bernoulli(torch.full((20, 8), 0.5, dtype=torch.float64))
    pyro.set_rng_seed(1)
    sampled = summarise(dataset_statistics(mix.model, mix.guide, x, 500, batch_size=10), 500)
    report = exact_report(exact_statistics(mix, x), sampled)
    assert report["max_abs_identity_error"] < 1e-12
    assert math.isclose(report["gap"], report["kl_posterior"], abs_tol=1e-12)
    assert abs(report["sampled_elbo_minus_exact"]) < 4 * sampled["stderr"]["elbo"] + 0.05
    assert abs(report["bound_curve_minus_log_likelihood"]["500"]) < 0.02
    assert exact_verdict(report)["level"] == "exact-gap" and "not meaningful" in exact_verdict(report)["message"]
    assert sampled["active_units_by_site"] == {}  # a discrete latent has no code mean


def test_enum_objective_value_is_minus_the_exact_elbo():
    mix = _mixture(NormalHeteroscedastic(0.1))
    x = torch.rand(7, 8, dtype=torch.float64)
    stats = exact_statistics(mix, x)
    assert -make_elbo("enum").loss(mix.model, mix.guide, x) == pytest.approx(stats["elbo"].sum().item(), abs=1e-9)

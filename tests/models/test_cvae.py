"""The class-conditional VAE against a conditional linear-Gaussian model with exact log p(x | y): its
programs read rows [x, one_hot(y)], so the project's bounds, k-hat and AIS score log p(x | y) unchanged."""

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO
from torch.distributions import kl_divergence

import pyro_vae as pv
from pyro_vae.diagnostics.ais import ais
from pyro_vae.diagnostics.bounds import bound_curve, log_weights
from pyro_vae.diagnostics.tightness import dataset_statistics, summarise
from tests.linear_gaussian import ConditionalLinearGaussian


@pytest.fixture
def truth():
    return ConditionalLinearGaussian(num_classes=4)


def test_exact_posterior_gives_log_p_x_given_y_in_every_weight(truth):
    cvae = truth.cvae()
    x, y = truth.sample(6)
    lw = log_weights(cvae.model, cvae.guide, cvae.rows(x, y), num_samples=8)
    assert torch.allclose(lw, truth.log_px_given_y(x, y).expand(8, -1), atol=1e-9)


def test_elbo_is_log_p_x_given_y_minus_the_exact_kl(truth):
    """With a linear-Gaussian model the ELBO of a Gaussian q(z | x, y) is known: log p(x | y) - KL(q || p(z | x, y))."""
    cvae = truth.cvae(shift=0.2, scale_factor=1.5)
    x, y = truth.sample(4)
    rows = cvae.rows(x, y)
    q = cvae.posterior_at(rows)
    gain = truth.base.post_gain
    exact_posterior = torch.distributions.MultivariateNormal((x - truth.B[y]) @ gain.T, truth.base.post_cov)
    q_mvn = torch.distributions.MultivariateNormal(q.mean, torch.diag_embed(q.variance))
    exact_elbo = truth.log_px_given_y(x, y) - kl_divergence(q_mvn, exact_posterior)
    pyro.set_rng_seed(0)
    estimate = -Trace_ELBO(num_particles=20000, vectorize_particles=True).loss(cvae.model, cvae.guide, rows)
    assert estimate == pytest.approx(exact_elbo.sum().item(), abs=0.05)


def test_bounds_converge_to_log_p_x_given_y(truth):
    cvae = truth.cvae(shift=0.3, scale_factor=1.3)
    x, y = truth.sample(5)
    pyro.set_rng_seed(0)
    curve = bound_curve(log_weights(cvae.model, cvae.guide, cvae.rows(x, y), num_samples=20000), [1, 10, 20000])
    exact = truth.log_px_given_y(x, y)
    assert (curve[1] < curve[10]).all() and ((exact - curve[1]) > 0.5).all()
    assert torch.allclose(curve[20000], exact, atol=0.02)


def test_report_and_ais_read_the_conditional_pair_unchanged(truth):
    cvae = truth.cvae(shift=0.3, scale_factor=1.3)
    x, y = truth.sample(6)
    rows = cvae.rows(x, y)
    stats = dataset_statistics(cvae.model, cvae.guide, rows, num_samples=2000, batch_size=4, seed=0)
    report = summarise(stats, 2000)
    exact = truth.log_px_given_y(x, y).mean().item()
    assert report["log_likelihood"] == pytest.approx(exact, abs=0.02)
    assert report["verdict"]["level"] in ("reliable", "caution")
    pyro.set_rng_seed(0)
    result = ais(cvae.model, cvae.guide, rows, num_steps=100, num_chains=64, leapfrog_steps=4)
    assert torch.allclose(result.log_likelihood, truth.log_px_given_y(x, y), atol=0.05)
    exact_q = truth.cvae()  # q(z | x, y) = p(z | x, y): every AIS weight is log p(x | y)
    result = ais(exact_q.model, exact_q.guide, rows, num_steps=10, num_chains=4, leapfrog_steps=2)
    assert torch.allclose(result.log_weights, truth.log_px_given_y(x, y).expand(4, -1), atol=1e-9)


def test_samples_follow_the_label(truth):
    cvae = truth.cvae()
    torch.manual_seed(0)
    means = cvae.sample(4000, y=torch.full((4000,), 2))
    assert torch.allclose(means.mean(0), truth.B[2], atol=0.1)  # E[W z + b_2] = b_2
    assert cvae.decode(torch.zeros(3, truth.z_dim, dtype=torch.float64), torch.tensor([0, 1, 3])).shape == (3, 5)


def test_the_vamp_prior_is_refused():
    lik, post = pv.Bernoulli(), pv.DiagonalNormal()
    with pytest.raises(pv.UserError, match="vamp:3"):
        pv.ConditionalVAE(pv.ConditionalMLP(8, 2, [4], post.num_params(2)), pv.ConditionalMLP(2, 2, [4], 8),
                          num_classes=2, prior=pv.VampPrior(2, 3, 8), likelihood=lik, posterior=post)

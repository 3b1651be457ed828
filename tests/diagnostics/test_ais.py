"""Annealed importance sampling against exact answers: linear-Gaussian models with one and two latent
layers, a Poisson-Gamma model with a positive latent, and the zero-variance case q0 = p(z | x)."""

import math
import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch

import pyro_vae as pv
from pyro_vae.diagnostics import ais as ais_module
from pyro_vae.diagnostics.ais import linear_schedule, make_betas, sigmoid_schedule
from pyro_vae.diagnostics.hmc import adapt_step_size
from pyro_vae.diagnostics.step_sizes import PilotStepSizes
from pyro_vae.errors import UserError
from tests.helpers import small_vae
from tests.linear_gaussian import LinearGaussian, TwoLayerLinearGaussian

TOLERANCE = 0.05  # nats: |mean over the points of (AIS - exact)| once annealing has converged (64 chains)


@pytest.fixture(scope="module")
def linear():
    """Posterior sd 0.16 and 0.24: 64 draws of a poor q0 (or of the prior) are not enough."""
    lg = LinearGaussian(column_norms=(3.0, 2.0))
    x = lg.sample_x(20)
    return lg, x, lg.log_px(x)


def ais_error(vae, x, exact, num_steps, init="guide", num_chains=64):
    """Mean over points of AIS - exact log p(x) (a seeded run)."""
    pyro.set_rng_seed(0)
    res = pv.ais(vae.model, vae.guide, x, num_steps=num_steps, num_chains=num_chains, leapfrog_steps=4, init=init)
    return (res.log_likelihood - exact).mean().item(), res


@pytest.mark.parametrize("init,steps,tolerance", [("guide", 300, TOLERANCE), ("prior", 500, 2 * TOLERANCE)])
def test_ais_converges_to_the_exact_log_likelihood(linear, init, steps, tolerance):
    """A wrong q0 (shifted by 0.5, 1.5x too wide; or the prior): one step (importance sampling with
    64 draws) is far below log p(x), 5 steps closer, and 300 within 0.05 nats (500 within 0.1 from
    the prior, which converges more slowly; mean over 20 points, 64 chains). The estimate is a
    stochastic lower bound, so it approaches from below."""
    lg, x, exact = linear
    vae = lg.vae(shift=0.5, scale_factor=1.5)
    errors = [ais_error(vae, x, exact, num_steps, init)[0] for num_steps in (1, 5)]
    long, res = ais_error(vae, x, exact, steps, init)
    assert errors[0] < -0.3 and errors[0] < errors[1] < 0, errors
    assert abs(long) < tolerance and abs(long) < abs(errors[1]) / 3, long
    assert 0.5 < res.acceptance.mean().item() < 0.9  # adapted toward 0.65
    assert res.log_likelihood.dtype == torch.float64 and res.log_weights.shape == (64, 20)


def test_ais_weights_are_unbiased_for_p_of_x(linear):
    """E[w] = p(x) for each chain whatever the number of steps: the log-mean-exp over 2,000 chains
    of a short, poor annealing run (10 steps) matches the exact log p(x) within Monte-Carlo error."""
    lg, x, exact = linear
    vae = lg.vae(shift=0.5, scale_factor=1.5)
    pyro.set_rng_seed(1)
    res = pv.ais(vae.model, vae.guide, x[:3], num_steps=10, num_chains=2000, leapfrog_steps=2)
    w = (res.log_weights - exact[:3]).exp()  # (C, 3): w / p(x), mean 1
    z = (w.mean(0) - 1) / (w.std(0) / math.sqrt(w.shape[0]))
    assert z.abs().max() < 4, z
    assert res.chain_spread.min() > 0.1  # the weights do vary: the check is not vacuous


def test_exact_posterior_gives_zero_variance_weights(linear):
    """With q0 = p(z | x) every intermediate target is p(x)^beta p(z | x), each increment is
    dbeta * log p(x) whatever z is, and every chain's weight equals log p(x)."""
    lg, x, exact = linear
    vae = lg.vae()  # the encoder outputs the exact posterior
    _, res = ais_error(vae, x, exact, 50)
    assert torch.allclose(res.log_weights, exact.expand(64, -1), atol=1e-9, rtol=0)
    assert res.chain_spread.max() < 1e-9


def test_two_latent_sites_match_the_exact_joint_gaussian():
    """The two-layer VAE (z1 -> z2 -> x, a bottom-up guide: two latent sites flattened into one
    vector per chain) on a linear-Gaussian model: AIS converges to the exact log p(x)."""
    m = TwoLayerLinearGaussian()
    x = m.sample_x(10)
    exact = m.log_px(x)
    vae = m.vae(shift=0.5, scale_factor=0.7)  # q(z2 | x) shifted and too narrow
    short, _ = ais_error(vae, x, exact, 5)
    long, _ = ais_error(vae, x, exact, 150)
    assert short < -0.2 and abs(long) < TOLERANCE, (short, long)


def poisson_gamma(a=2.0, b=1.0, exact_guide=True, shift=0.3, scale=0.6, dtype=torch.float32):
    """lambda ~ Gamma(a, b); x_d ~ Poisson(lambda), d = 1..4: a positive latent (annealed in log space).
    Guide: the exact posterior Gamma(a + sum x, b + D), or a LogNormal shifted by ``shift`` in log
    space with ``scale`` times the posterior's log-space spread."""
    a_, b_ = torch.tensor(a, dtype=dtype), torch.tensor(b, dtype=dtype)

    def model(x):
        with pyro.plate("data", x.shape[0], dim=-1):
            rate = pyro.sample("rate", dist.Gamma(a_, b_))  # (B,)
            pyro.sample("x", dist.Poisson(rate[..., None].expand(rate.shape + x.shape[-1:])).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0], dim=-1):
            shape, rate = a + x.sum(-1), b + x.shape[-1]
            if exact_guide:
                pyro.sample("rate", dist.Gamma(shape, rate))
            else:
                pyro.sample("rate", dist.LogNormal((shape / rate).log() + shift, scale * shape.rsqrt()))

    def log_px(x):
        s, d = x.sum(-1), x.shape[-1]
        return (a * math.log(b) - math.lgamma(a) + torch.lgamma(a + s) - (a + s) * math.log(b + d)
                - torch.lgamma(x + 1).sum(-1))

    return model, guide, log_px


POISSON_X = torch.tensor([[0.0, 1.0, 3.0, 2.0], [5.0, 7.0, 4.0, 6.0], [1.0, 0.0, 0.0, 1.0]])


def test_a_positive_latent_is_annealed_in_real_space():
    """A Gamma latent goes through biject_to (exp): with the exact posterior as q0 every weight is
    log p(x) (the Jacobian cancels in the weights); with a LogNormal q0 AIS converges to it."""
    x = POISSON_X
    model, guide, log_px = poisson_gamma()
    exact = log_px(x)
    res = pv.ais(model, guide, x, num_steps=30, num_chains=8, leapfrog_steps=3)
    assert torch.allclose(res.log_weights, exact.double().expand(8, -1), atol=1e-4)  # float32 model
    model, guide, _ = poisson_gamma(exact_guide=False, scale=1.0)
    short = pv.ais(model, guide, x, num_steps=3, num_chains=64, leapfrog_steps=3).log_likelihood
    long = pv.ais(model, guide, x, num_steps=300, num_chains=64, leapfrog_steps=3).log_likelihood
    assert (short - exact).abs().mean() > 3 * (long - exact).abs().mean()
    assert (long - exact).abs().max() < TOLERANCE, long - exact


class SelfAdaptingStepSizes(PilotStepSizes):
    """Wu et al.'s scheme: every chain adapts its step size on its own acceptance (for the test below)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.eps = super().current()

    def current(self):
        return self.eps

    def update(self, accept_prob):
        self.eps = adapt_step_size(self.eps, accept_prob)


def weight_z_scores():
    """E[w] / p(x) - 1 over 2,000 chains of 100 steps (LogNormal q0), as z-scores, per point."""
    model, guide, log_px = poisson_gamma(exact_guide=False, scale=1.0, dtype=torch.float64)
    x = POISSON_X.double()
    pyro.set_rng_seed(0)
    res = pv.ais(model, guide, x, num_steps=100, num_chains=2000, leapfrog_steps=3, step_size=0.5)
    w = (res.log_weights - log_px(x)).exp()  # (C, B): w / p(x), mean 1 when unbiased
    return (w.mean(0) - 1) / (w.std(0) / math.sqrt(w.shape[0]))


def test_pilot_adapted_step_sizes_keep_the_weights_unbiased(monkeypatch):
    """E[w] = p(x) with the step size adapted by pilot chains; adapting each chain on its own
    acceptance (Wu et al.'s scheme) biases the weights upward, and the same check catches it."""
    z = weight_z_scores()
    assert z.abs().max() < 4, z
    monkeypatch.setattr(ais_module, "PilotStepSizes", SelfAdaptingStepSizes)
    z = weight_z_scores()
    assert z.max() > 6, z


# --- the tests above can fail: a broken accumulation or schedule is caught ------------------------

def test_a_broken_weight_accumulation_is_caught(linear, monkeypatch):
    """Accumulating beta_t instead of beta_t - beta_{t-1} breaks both the zero-variance and the
    convergence checks."""
    lg, x, exact = linear
    monkeypatch.setattr(ais_module, "weight_increment", lambda beta_prev, beta, integrand: beta * integrand)
    _, res = ais_error(lg.vae(), x, exact, 50)
    assert not torch.allclose(res.log_weights, exact.expand(64, -1), atol=1e-3)
    long, _ = ais_error(lg.vae(shift=0.5, scale_factor=1.5), x, exact, 100)
    assert abs(long) > 10 * TOLERANCE


@pytest.mark.parametrize("broken", ["reversed schedule", "negated increment"])
def test_a_wrong_sign_in_the_schedule_is_caught(linear, monkeypatch, broken):
    """A schedule running from 1 to 0, or increments beta_{t-1} - beta_t: the convergence check
    fails by far more than its tolerance."""
    lg, x, exact = linear
    if broken == "reversed schedule":
        monkeypatch.setitem(ais_module.SCHEDULES, "sigmoid", lambda num_steps: 1 - sigmoid_schedule(num_steps))
    else:
        monkeypatch.setattr(ais_module, "weight_increment", lambda beta_prev, beta, lw: (beta_prev - beta) * lw)
    long, _ = ais_error(lg.vae(shift=0.5, scale_factor=1.5), x, exact, 100)
    assert abs(long) > 10 * TOLERANCE


def test_a_missing_transition_is_caught(linear, monkeypatch):
    """Without the HMC moves AIS is importance sampling with q0 and stays far below log p(x)."""
    lg, x, exact = linear
    monkeypatch.setattr(ais_module, "hmc_transition", lambda state, *a, **k: (state, torch.ones(state.u.shape[0])))
    long, _ = ais_error(lg.vae(shift=0.5, scale_factor=1.5), x, exact, 300)
    assert long < -3 * TOLERANCE


# --- schedules, settings, seeds ---------------------------------------------------------------------

def test_schedules_run_from_zero_to_one():
    for betas in (sigmoid_schedule(100), linear_schedule(100)):
        assert betas.shape == (101,) and betas[0] == 0 and betas[-1] == 1 and (betas.diff() > 0).all()
    s = sigmoid_schedule(1000)
    assert s[1] - s[0] < (s[501] - s[500]) / 10  # dense near 0 (and 1), as Wu et al.
    assert torch.equal(make_betas([0.0, 0.3, 1.0], None), torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64))


def test_seeds_are_honoured_and_chunks_do_not_change_the_estimate(linear):
    lg, x, _ = linear
    vae = lg.vae(shift=0.5, scale_factor=1.5)
    runs = []
    for batch_size in (20, 20, 7):
        pyro.set_rng_seed(3)
        runs.append(pv.ais(vae.model, vae.guide, x, num_steps=20, num_chains=4, leapfrog_steps=2,
                           batch_size=batch_size))
    assert torch.equal(runs[0].log_likelihood, runs[1].log_likelihood)
    assert runs[2].log_likelihood.shape == (20,) and runs[2].log_weights.shape == (4, 20)
    calls = []
    pv.ais(vae.model, vae.guide, x, num_steps=20, num_chains=4, leapfrog_steps=2, batch_size=7,
           progress=calls.append)
    assert len(calls) == 3 * 20  # 3 chunks of 20 steps


def test_result_summary_has_the_eval_json_keys(linear):
    lg, x, _ = linear
    res = pv.ais(*(lambda v: (v.model, v.guide))(lg.vae(shift=0.2)), x, num_steps=10, num_chains=3,
                 leapfrog_steps=2, schedule="linear", init="prior")
    summary = res.summary()
    assert {"log_likelihood", "stderr", "num_steps", "num_chains", "leapfrog_steps", "schedule", "init",
            "acceptance_mean", "seconds"} <= set(summary)
    assert summary["schedule"] == "linear" and summary["init"] == "prior" and summary["num_chains"] == 3
    assert summary["stderr"] == pytest.approx(res.log_likelihood.std().item() / math.sqrt(20))


def test_bad_settings_name_their_parameter():
    vae = small_vae()
    x = torch.bernoulli(torch.full((3, 64), 0.3))
    cases = [(dict(num_steps=0), "num_steps must be"), (dict(num_chains=-1), "num_chains must be"),
             (dict(leapfrog_steps=0), "leapfrog_steps must be"), (dict(schedule="cosine"), "schedule must be"),
             (dict(init="posterior"), "init must be"), (dict(schedule=[0.0, 0.7, 0.5, 1.0]), "schedule must be")]
    for kwargs, message in cases:
        with pytest.raises(UserError, match=message):
            pv.ais(vae.model, vae.guide, x, **{"num_steps": 5, **kwargs})


def test_point_mass_guides_and_discrete_latents_are_refused():
    lik, post = pv.Bernoulli(), pv.Delta()
    ae = pv.VAE(pv.MLP(64, [16], post.num_params(3)), pv.MLP(3, [16], lik.num_params(64)),
                prior=pv.StandardNormal(3), likelihood=lik, posterior=post)
    x = torch.bernoulli(torch.full((3, 64), 0.3))
    with pytest.raises(UserError, match="init='guide' needs a guide with a density.*use init='prior'"):
        pv.ais(ae.model, ae.guide, x, num_steps=5)
    # with the prior as q0 the point-mass guide is not needed: AIS of the model itself
    assert pv.ais(ae.model, ae.guide, x, num_steps=5, init="prior", num_chains=2).log_likelihood.shape == (3,)

    def model(x):
        with pyro.plate("data", x.shape[0], dim=-1):
            c = pyro.sample("c", dist.Bernoulli(0.5))
            pyro.sample("x", dist.Normal(c[..., None], 1.0).expand(c.shape + x.shape[-1:]).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0], dim=-1):
            pyro.sample("c", dist.Bernoulli(0.5))

    with pytest.raises(UserError, match="site 'c' is discrete"):
        pv.ais(model, guide, torch.zeros(3, 2), num_steps=5)


@pytest.mark.parametrize("init", ["guide", "prior"])
def test_ais_graph_equals_eager_bit_for_bit(init):
    """The log-densities and gradients replayed as a captured graph are eager code's, on the same draws."""
    from tests.helpers import small_vae

    vae, x = small_vae(), torch.bernoulli(torch.full((3, 64), 0.3))
    results = {}
    for graph in ("eager", "captured"):
        pyro.set_rng_seed(4)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback: the graph is used
            results[graph] = pv.ais(vae.model, vae.guide, x, num_steps=8, num_chains=3, leapfrog_steps=3, init=init,
                                    graph=graph)
    assert torch.equal(results["eager"].log_weights, results["captured"].log_weights)
    assert torch.equal(results["eager"].step_size, results["captured"].step_size)

"""The BDMC sandwich on a linear-Gaussian model (exact log p(x*) known) and the simulation of (z*, x*)."""

import math

import pyro
import pytest
import torch

import pyro_vae as pv
from pyro_vae.diagnostics.bdmc import reverse_ais, simulate
from pyro_vae.errors import UserError
from tests.helpers import small_vae
from tests.linear_gaussian import LinearGaussian


@pytest.fixture(scope="module")
def model():
    return LinearGaussian(column_norms=(3.0, 2.0))


def sandwich(vae, num_steps, num_points=30, num_chains=16):
    pyro.set_rng_seed(0)
    x = torch.zeros(1, 5, dtype=torch.float64)  # only its shape and dtype matter
    return pv.bdmc(vae.model, vae.guide, num_points, num_steps, x=x, num_chains=num_chains, leapfrog_steps=4)


def test_lower_and_upper_bound_the_exact_log_likelihood(model):
    """lower <= exact <= upper on the mean over 30 simulated points, within 3 standard errors of the
    per-point differences, and the gap narrows as the steps grow (a poor q0: shifted, too wide)."""
    vae = model.vae(shift=0.5, scale_factor=1.5)
    gaps = []
    for steps in (5, 200):
        sand = sandwich(vae, steps)
        exact = model.log_px(sand.x)
        below, above = exact - sand.lower, sand.upper - exact  # both >= 0 in expectation
        for d in (below, above):
            assert d.mean() > -3 * d.std() / math.sqrt(d.numel()), (steps, d.mean())
        gaps.append(sand.gap.mean().item())
    assert gaps[0] > 0.3 and gaps[1] < 0.05 and gaps[1] < gaps[0] / 10, gaps
    summary = sand.summary()
    assert {"num_points", "lower", "upper", "gap_mean", "gap_max", "num_steps", "seconds"} <= set(summary)
    assert summary["num_points"] == 30 and summary["gap_mean"] == pytest.approx(sand.gap.mean().item())


def test_reverse_ais_from_the_exact_posterior_with_q0_exact_is_exact(model):
    """With q0 = p(z | x) each reverse increment is -dbeta log p(x): upper = log p(x) for every point."""
    vae = model.vae()
    sand = sandwich(vae, 20, num_points=10, num_chains=4)
    exact = model.log_px(sand.x)
    assert torch.allclose(sand.upper, exact, atol=1e-9) and torch.allclose(sand.lower, exact, atol=1e-9)


def test_a_reverse_run_from_the_wrong_start_is_not_an_upper_bound(model):
    """The upper bound needs the exact posterior draw: started from q0's draws instead, reverse AIS
    with few steps falls below log p(x), so the sandwich check above would fail."""
    vae = model.vae(shift=0.5, scale_factor=1.5)
    pyro.set_rng_seed(0)
    x, z = simulate(vae.model, torch.zeros(1, 5, dtype=torch.float64), 30)
    fake = {"z": pyro.poutine.trace(vae.guide).get_trace(x).nodes["z"]["value"].detach()}  # z ~ q0, not p(z|x)
    forward = pv.ais(vae.model, vae.guide, x, 5, 8, 4, record_step_sizes=True)
    upper, _, _ = reverse_ais(vae.model, vae.guide, x, fake, forward.step_schedule, 5, 8, 4)
    assert (upper - model.log_px(x)).mean() < -0.1


def test_simulated_points_follow_the_likelihood():
    """Bernoulli likelihood: binary x*; the latents are returned per site with the points' batch."""
    vae = small_vae()
    x = torch.bernoulli(torch.full((4, 64), 0.3))
    pyro.set_rng_seed(0)
    xs, zs = simulate(vae.model, x, 50)
    assert xs.shape == (50, 64) and set(xs.unique().tolist()) <= {0.0, 1.0} and 0 < xs.mean() < 1
    assert set(zs) == {"z"} and zs["z"].shape == (50, 3)
    pyro.set_rng_seed(0)
    xs2, _ = simulate(vae.model, x, 50)
    assert torch.equal(xs, xs2)  # seeded


def test_two_latent_sites_are_simulated_and_sandwiched():
    from tests.linear_gaussian import TwoLayerLinearGaussian

    m = TwoLayerLinearGaussian()
    vae = m.vae(shift=0.5, scale_factor=0.7)
    pyro.set_rng_seed(0)
    sand = pv.bdmc(vae.model, vae.guide, 10, 50, x=m.sample_x(1), num_chains=8, leapfrog_steps=3)
    assert set(sand.z) == {"z1", "z2"} and sand.z["z1"].shape == (10, 2) and sand.z["z2"].shape == (10, 3)
    exact = m.log_px(sand.x)
    assert sand.lower.mean() < exact.mean() < sand.upper.mean() and sand.gap.mean() < 1.0


def test_bdmc_needs_the_shape_of_x():
    vae = small_vae()
    with pytest.raises(UserError, match="bdmc needs x"):
        pv.bdmc(vae.model, vae.guide, 5, 10)
    with pytest.raises(UserError, match="num_points must be a positive integer"):
        pv.bdmc(vae.model, vae.guide, 0, 10, x=torch.zeros(2, 64))

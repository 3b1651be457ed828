"""HMC transitions: invariance of a known Gaussian target and the step-size adaptation."""

import math

import pytest
import torch

from pyro_vae.diagnostics.hmc import TARGET_ACCEPT, HMCState, adapt_step_size, hmc_transition

MEAN = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
SCALE = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)


def gaussian(u):
    """log N(u; MEAN, diag SCALE^2) up to a constant, as one component, and its gradient."""
    z = (u - MEAN) / SCALE
    return (-0.5 * z.pow(2).sum(-1))[None], (-z / SCALE)[None]


def draw(n, seed=0):
    """Exact draws from the target, from their own generator (offset so that they never repeat the
    global stream the momenta come from: equal momenta and positions would not be HMC)."""
    g = torch.Generator().manual_seed(1000 + seed)
    return MEAN + SCALE * torch.randn(n, 3, generator=g, dtype=torch.float64)


def invariance_z_scores(eps, num_transitions=5, n=20000):
    """Chains started exactly at the target, moved by HMC: z-scores of their mean and variance
    against the target's (each dimension), and the acceptance rate of each transition."""
    u = draw(n)
    state = HMCState(u, *gaussian(u))
    accepts = []
    for _ in range(num_transitions):
        state, accept = hmc_transition(state, gaussian, [1.0], eps, num_leapfrog=4)
        accepts.append(accept.mean().item())
    # the cached values and gradients are those of the accepted positions
    values, grads = gaussian(state.u)
    assert torch.allclose(state.values, values) and torch.allclose(state.grads, grads)
    z_mean = (state.u.mean(0) - MEAN) / (SCALE / math.sqrt(n))
    z_var = (state.u.var(0) - SCALE**2) / (SCALE**2 * math.sqrt(2 / n))
    return torch.cat([z_mean, z_var]), accepts


@pytest.mark.parametrize("per_chain", [False, True])
def test_transitions_leave_a_gaussian_invariant(per_chain):
    """Chains started exactly at the target keep its mean and variance through 5 transitions
    (|z| < 4 over 20,000 chains), with step sizes large enough to reject a share of proposals;
    with one step size per chain (0.2 to 1.1) as well."""
    torch.manual_seed(0)
    eps = torch.empty(20000, 1, dtype=torch.float64).uniform_(0.2, 1.1) if per_chain else 0.8
    z, accepts = invariance_z_scores(eps)
    assert 0.3 < min(accepts) and max(accepts) < 0.97  # the Metropolis test matters at this step size
    assert z.abs().max() < 4, z


def test_a_transition_without_the_metropolis_test_fails_the_invariance_check(monkeypatch):
    """The check above can fail: accepting every proposal (uniform draws forced to 0) at a step
    size the integrator follows badly in the narrow dimension moves the variance."""
    monkeypatch.setattr(torch, "rand_like", torch.zeros_like)
    z, accepts = invariance_z_scores(0.8)
    assert z.abs().max() > 4, z


def test_the_target_is_the_weighted_sum_of_components():
    """Two components with weights w0, w1 target exp(w0 v0 + w1 v1): here the same Gaussian."""
    n = 20000
    u = draw(n, seed=1)
    v, g = gaussian(u)
    components = lambda x: (torch.cat([gaussian(x)[0] * 2.0, gaussian(x)[0] * 0.5]),  # noqa: E731
                            torch.cat([gaussian(x)[1] * 2.0, gaussian(x)[1] * 0.5]))
    state = HMCState(u, *components(u))
    for _ in range(3):  # 0.25 * 2 + 1.0 * 0.5 = 1: the Gaussian itself
        state, _ = hmc_transition(state, components, [0.25, 1.0], 0.7, num_leapfrog=4)
    z_var = (state.u.var(0) - SCALE**2) / (SCALE**2 * math.sqrt(2 / n))
    assert z_var.abs().max() < 4


def test_step_size_adaptation_reaches_the_target_acceptance():
    """From eps = 0.01 the multiplicative rule brings each chain's acceptance to about 0.65."""
    n = 2000
    u = draw(n, seed=2)
    state = HMCState(u, *gaussian(u))
    eps = torch.full((n, 1), 0.01, dtype=torch.float64)
    history = []
    for _ in range(400):
        state, accept = hmc_transition(state, gaussian, [1.0], eps, num_leapfrog=5)
        eps = adapt_step_size(eps, accept)
        history.append(accept.mean().item())
    late = sum(history[-100:]) / 100
    assert history[0] > 0.99  # eps = 0.01 accepts almost everything
    assert abs(late - TARGET_ACCEPT) < 0.08, late
    assert 0.3 < eps.median().item() < 1.5  # far from where it started


def test_adapt_step_size_is_multiplicative_and_clamped():
    eps = torch.tensor([[0.1], [0.1], [0.99], [1e-4]])
    out = adapt_step_size(eps, torch.tensor([0.9, 0.1, 0.9, 0.1]))
    assert torch.allclose(out.flatten(), torch.tensor([0.102, 0.098, 1.0, 1e-4]))


def test_nan_energies_are_rejected():
    u = draw(10)
    state = HMCState(u, *gaussian(u))

    def nan_target(x):
        v, g = gaussian(x)
        return torch.full_like(v, math.nan), g

    new, accept = hmc_transition(state, nan_target, [1.0], 0.5, num_leapfrog=2)
    assert torch.equal(new.u, u) and (accept == 0).all()

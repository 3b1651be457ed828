"""Hamiltonian Monte Carlo transitions for many independent chains at once, each with its own step size.

A state holds N chains (rows) of positions ``u`` ``(N, D)`` and, at those positions, K log-density
components ``values`` ``(K, N)`` with their gradients ``grads`` ``(K, N, D)``. A transition targets

    log f(u) = sum_k  w_k  values_k(u)                    (weights w given per transition)

so an annealing sampler can move its target (w = (1 - beta, beta, 1) for log q0, log p(x, z) and a
log-Jacobian) without evaluating the densities again at the current state: every gradient is the
same linear combination of the cached component gradients, and the leapfrog map stays an exact
function of the position (reversible and volume preserving), so the Metropolis test is exact.

One transition: momentum r ~ N(0, I), L leapfrog steps of size eps per chain (Neal 2011), accept
with probability min(1, exp(-H(u', r') + H(u, r))), H = -log f + |r|^2 / 2; a NaN or infinite energy
rejects. :func:`adapt_step_size` moves each chain's eps toward an acceptance probability of 0.65,
as Wu, Burda, Salakhutdinov & Grosse (2017) do in AIS: eps * 1.02 after a transition accepted with
probability above the target, eps * 0.98 below it. Pyro's ``velocity_verlet`` is not used: its
potential must be one scalar whose gradient it takes itself, which gives neither the per-chain
energies the Metropolis test needs nor the separate component gradients that let the target move.

References: Neal (2011), MCMC using Hamiltonian dynamics, Handbook of MCMC, ch. 5;
Wu, Burda, Salakhutdinov & Grosse (2017), On the quantitative analysis of decoder-based generative models, ICLR.
"""

from typing import NamedTuple

import torch

TARGET_ACCEPT = 0.65  # Wu et al. (2017); Neal (2011) finds 0.65 optimal for HMC in high dimension
STEP_SIZE_FACTORS = (1.02, 0.98)  # multiply eps by the first above the target acceptance, the second below
STEP_SIZE_RANGE = (1e-4, 1.0)  # eps is kept in this range


class HMCState(NamedTuple):
    """N chains: positions ``u`` ``(N, D)``, log-density components ``values`` ``(K, N)`` at ``u``
    and their gradients ``grads`` ``(K, N, D)``."""

    u: torch.Tensor
    values: torch.Tensor
    grads: torch.Tensor


def combine(weights, components):
    """``sum_k weights[k] * components[k]``: the target's log-density ``(N,)`` or gradient ``(N, D)``."""
    total = weights[0] * components[0]
    for w, c in zip(weights[1:], components[1:], strict=False):
        total = total + w * c
    return total


def hmc_transition(state, evaluate, weights, step_size, num_leapfrog):
    """One HMC transition of every chain, leaving ``f = exp(sum_k weights[k] values_k)`` invariant.

    :param HMCState state: the current chains.
    :param evaluate: ``u (N, D) -> (values (K, N), grads (K, N, D))``.
    :param weights: K floats, the target's weights of the components.
    :param step_size: ``(N, 1)`` leapfrog step size of each chain (or a float).
    :param int num_leapfrog: leapfrog steps L.
    :returns: ``(new_state, accept_prob)`` with ``accept_prob`` ``(N,)``: min(1, exp(-dH)), 0 for NaN.

    Example::

        >>> u = torch.randn(1000, 2)                     # 1000 chains already at f = N(0, I)
        >>> evaluate = lambda u: ((-0.5 * u.pow(2).sum(-1))[None], (-u)[None])
        >>> state = HMCState(u, *evaluate(u))
        >>> new, accept = hmc_transition(state, evaluate, [1.0], step_size=0.3, num_leapfrog=5)
        >>> new.u.shape, bool(accept.mean() > 0.9), bool(abs(new.u.var() - 1) < 0.15)
        (torch.Size([1000, 2]), True, True)
    """
    u0 = state.u
    r = torch.randn_like(u0)  # (N, D)
    h0 = -combine(weights, state.values) + 0.5 * r.pow(2).sum(-1)  # (N,)
    u, values, grads = u0, state.values, state.grads
    r = r + 0.5 * step_size * combine(weights, grads)  # half step of momentum
    for step in range(num_leapfrog):
        u = u + step_size * r
        values, grads = evaluate(u)
        r = r + (0.5 if step == num_leapfrog - 1 else 1.0) * step_size * combine(weights, grads)
    h1 = -combine(weights, values) + 0.5 * r.pow(2).sum(-1)  # (N,)
    log_accept = torch.nan_to_num(h0 - h1, nan=-torch.inf, posinf=-torch.inf)  # NaN or inf energy: reject
    accept_prob = log_accept.clamp(max=0.0).exp()  # (N,)
    accept = torch.rand_like(accept_prob).log() < log_accept  # (N,)
    new = HMCState(torch.where(accept[:, None], u, u0),
                   torch.where(accept, values, state.values),
                   torch.where(accept[:, None], grads, state.grads))
    return new, accept_prob


def adapt_step_size(step_size, accept_prob, target=TARGET_ACCEPT, factors=STEP_SIZE_FACTORS,
                    limits=STEP_SIZE_RANGE):
    """Each chain's next step size: ``eps * factors[0]`` where the acceptance probability was above
    ``target``, ``eps * factors[1]`` where not, kept within ``limits``; ``(N, 1)``.

    The multiplicative rule of Wu et al. (2017), on each transition's own acceptance probability
    rather than a running average, so eps follows the target as annealing moves it: eps settles
    where half the transitions are accepted with probability above ``target``.

    Example::

        >>> adapt_step_size(torch.full((2, 1), 0.1), torch.tensor([0.9, 0.2])).flatten()
        tensor([0.1020, 0.0980])
    """
    up, down = factors
    factor = torch.where(accept_prob > target, up, down)[:, None]  # (N, 1)
    return (step_size * factor).clamp(*limits)

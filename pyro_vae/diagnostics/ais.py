"""Annealed importance sampling (AIS) of log p(x) with HMC transitions, for any model/guide pair.

AIS (Neal 2001) moves C chains per data point through the intermediate densities

    f_t(z) = q0(z)^(1 - beta_t) [p(z) p(x | z)]^beta_t,      0 = beta_0 < beta_1 < ... < beta_T = 1,

where q0 is the guide q(z | x) (``init="guide"``) or the prior p(z) (``init="prior"``). Starting
from z_0 ~ q0, each step adds

    (beta_t - beta_{t-1}) [log p(x, z_{t-1}) - log q0(z_{t-1})]

to the chain's log weight (in float64) and then moves z by an HMC transition that leaves f_t
invariant (:mod:`.hmc`). Each weight w is unbiased for p(x), so log-mean-exp over the chains is a
stochastic lower bound on log p(x) (Jensen) that tends to log p(x) as T grows: unlike L_K it does
not need q to be close to the posterior, only enough annealing steps. The schedule is ``sigmoid``
(Wu et al. 2017: more steps near beta = 0 and 1) or ``linear``. The HMC step size is adapted
toward an acceptance probability of 0.65 by Wu et al.'s rule, run by pilot chains whose weights are
not counted, so that the counted weights stay unbiased (:mod:`.step_sizes`).

All C chains (and the pilots) of all B images are one batched tensor computation (C B rows); images are processed
``batch_size`` at a time, so memory is bounded whatever the data size. log p(x, z) and log q0 are
read from Pyro traces at the chains' latent values (:mod:`.latent_space`), so every prior,
likelihood and posterior family, several latent sites (the two-layer VAE) and users' own programs work.

References: Neal (2001), Annealed importance sampling, Statistics and Computing 11;
Wu, Burda, Salakhutdinov & Grosse (2017), On the quantitative analysis of decoder-based generative
models, ICLR; Grosse, Ghahramani & Adams (2015), Sandwiching the marginal likelihood using
bidirectional Monte Carlo, arXiv:1511.02543.
"""

import math
import time
from dataclasses import dataclass, field

import torch

from ..errors import UserError, check_int, check_positive
from .hmc import HMCState, hmc_transition
from .latent_space import INITS, LatentSpace
from .step_sizes import PilotStepSizes

DEFAULT_STEPS = 1000
DEFAULT_CHAINS = 16
DEFAULT_LEAPFROG = 10
DEFAULT_STEP_SIZE = 0.05  # initial HMC step size (Wu et al.: 0.01), adapted from there by x1.02 / x0.98 a step
DEFAULT_PILOTS = 1  # chains per data point that adapt the step size for the counted ones (.step_sizes)
DEFAULT_CHUNK_ROWS = 8192  # chains x images pushed through the networks at once
BETA_BLOCK = 4096  # betas read at a time by anneal
SIGMOID_RADIUS = 4.0  # Wu et al.: beta_t = sigmoid(delta (2t/T - 1)), rescaled to [0, 1], delta = 4


def sigmoid_schedule(num_steps, radius=SIGMOID_RADIUS):
    """``(T + 1,)`` float64 betas from 0 to 1, dense near both ends (Grosse et al. 2015; Wu et al. 2017).

    Example::

        >>> sigmoid_schedule(4)
        tensor([0.0000, 0.1050, 0.5000, 0.8950, 1.0000], dtype=torch.float64)
    """
    s = torch.sigmoid(torch.linspace(-radius, radius, num_steps + 1, dtype=torch.float64))
    return (s - s[0]) / (s[-1] - s[0])


def linear_schedule(num_steps):
    """``(T + 1,)`` float64 betas evenly spaced from 0 to 1."""
    return torch.linspace(0.0, 1.0, num_steps + 1, dtype=torch.float64)


SCHEDULES = {"sigmoid": sigmoid_schedule, "linear": linear_schedule}


def make_betas(schedule, num_steps):
    """The betas of a schedule name (``sigmoid``, ``linear``), or a given increasing sequence from 0 to 1."""
    if isinstance(schedule, str):
        if schedule not in SCHEDULES:
            raise UserError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}", param="schedule")
        return SCHEDULES[schedule](check_int("num_steps", num_steps))
    betas = torch.as_tensor(schedule, dtype=torch.float64).flatten()
    if betas.numel() < 2 or betas[0] != 0 or betas[-1] != 1 or (betas.diff() < 0).any():
        raise UserError("schedule must be a name or a non-decreasing sequence of betas from 0 to 1", param="schedule")
    return betas


def weight_increment(beta_prev, beta, integrand):
    """The AIS log-weight increment of one step: ``(beta - beta_prev) [log p(x, z) - log q0(z)]``."""
    return (beta - beta_prev) * integrand


def anneal(space, u, betas, step_sizes, leapfrog_steps=DEFAULT_LEAPFROG, progress=None):
    """Move chains from ``u`` along ``betas``, accumulating their AIS log weights.

    At each t = 1..T: add :func:`weight_increment` at the current state, then (for t < T) an HMC
    transition targeting f_t. Run with increasing betas from draws of q0 this is forward AIS; with
    decreasing betas from exact posterior draws it is reverse AIS (:mod:`.bdmc`).

    :param LatentSpace space: the densities, for ``step_sizes.num_rows_chains`` chains.
    :param u: ``(N, D)`` initial states, chain-major (the pilot chains first).
    :param betas: ``(T + 1,)`` float64.
    :param step_sizes: a :class:`.step_sizes.PilotStepSizes` or
        :class:`.step_sizes.ScheduledStepSizes`.
    :param progress: called with 1 after each step.
    :returns: ``(log_w (C, B) float64, acceptance (C, B) mean over transitions)`` of the counted
        chains (the pilots' are left out).
    """
    values, grads = space.evaluate(u)
    if torch.isnan(values).any():
        raise ValueError("log densities at the initial states are NaN: the model or guide produced NaN parameters")
    state = HMCState(u, values, grads)
    n = u.shape[0]
    log_w = torch.zeros(n, dtype=torch.float64, device=u.device)
    accept_sum = torch.zeros(n, dtype=torch.float64, device=u.device)
    num_steps = betas.numel() - 1
    with torch.no_grad():
        for t in range(1, num_steps + 1):
            if (t - 1) % BETA_BLOCK == 0:  # the schedule read in blocks: a list of every beta is 4x the tensor
                block = betas[t - 1 : t + BETA_BLOCK].tolist()
            beta_prev, beta = block[(t - 1) % BETA_BLOCK], block[(t - 1) % BETA_BLOCK + 1]
            log_w = log_w + weight_increment(beta_prev, beta, space.log_joint_minus_q0(state.values))
            if t < num_steps:
                weights = [1.0 - beta, beta] + [1.0] * (state.values.shape[0] - 2)  # log q0, log p, log|J|
                state, accept_prob = hmc_transition(state, space.evaluate, weights, step_sizes.current(),
                                                    leapfrog_steps)
                step_sizes.update(accept_prob)
                accept_sum += accept_prob.double()
            if progress is not None:
                progress(1)
    counted = step_sizes.num_pilots * space.batch  # rows of the pilots, left out
    shape = (n // space.batch - step_sizes.num_pilots, space.batch)
    acceptance = accept_sum[counted:] / max(num_steps - 1, 1)
    return log_w[counted:].reshape(shape), acceptance.reshape(shape)


def log_mean_exp(log_w):
    """``log (1/C) sum_c exp(log_w[c])`` over dim 0, ``(B,)``."""
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])


@dataclass
class AISResult:
    """Per-data-point AIS estimates and diagnostics (nats; B data points, C chains).

    ``log_likelihood`` ``(B,)`` float64: log-mean-exp of the chains' weights, a stochastic lower
    bound on log p(x); ``log_weights`` ``(C, B)`` float64; ``acceptance`` ``(B,)`` mean HMC acceptance
    probability over chains and transitions; ``step_size`` ``(P, B)`` the pilots' final step sizes;
    ``step_schedule`` ``(T - 1, P, B)`` every step's (when asked for, else None).
    """

    log_likelihood: torch.Tensor
    log_weights: torch.Tensor
    acceptance: torch.Tensor
    step_size: torch.Tensor
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0
    step_schedule: torch.Tensor = None

    @property
    def stderr(self):
        """Standard error of the mean log-likelihood over data points (nan for one point)."""
        n = self.log_likelihood.numel()
        return self.log_likelihood.std().item() / math.sqrt(n) if n > 1 else math.nan

    @property
    def chain_spread(self):
        """Standard deviation of the log weights over chains, per data point ``(B,)``: how much the
        estimate still depends on which chains ran (0 when annealing is perfect)."""
        return self.log_weights.std(0) if self.log_weights.shape[0] > 1 else torch.zeros_like(self.log_likelihood)

    def summary(self):
        """JSON-ready means over the data points, with the settings."""
        return {"log_likelihood": self.log_likelihood.mean().item(), "stderr": self.stderr,
                **self.settings, "num_images": int(self.log_likelihood.numel()),
                "acceptance_mean": self.acceptance.mean().item(),
                "chain_spread_median": self.chain_spread.median().item(),
                "step_size_median": self.step_size.median().item(), "seconds": self.seconds}


def check_settings(num_steps, num_chains, leapfrog_steps, schedule, init, step_size, num_pilots):
    """The validated AIS settings as a dict (and the betas)."""
    settings = {"num_steps": check_int("num_steps", num_steps), "num_chains": check_int("num_chains", num_chains),
                "leapfrog_steps": check_int("leapfrog_steps", leapfrog_steps),
                "schedule": schedule if isinstance(schedule, str) else "custom",
                "init": init, "step_size": check_positive("step_size", step_size),
                "num_pilots": check_int("num_pilots", num_pilots, least=0)}
    if init not in INITS:
        raise UserError(f"init must be one of {', '.join(INITS)}, got {init!r}", param="init")
    betas = make_betas(schedule, settings["num_steps"])
    settings["num_steps"] = betas.numel() - 1
    return settings, betas


def default_batch_size(num_chains, rows=DEFAULT_CHUNK_ROWS):
    """Images per chunk so that one chunk holds about ``rows`` (chain, image) rows."""
    return max(1, rows // num_chains)


def ais(model, guide, x, num_steps=DEFAULT_STEPS, num_chains=DEFAULT_CHAINS, leapfrog_steps=DEFAULT_LEAPFROG,
        schedule="sigmoid", init="guide", step_size=DEFAULT_STEP_SIZE, num_pilots=DEFAULT_PILOTS, batch_size=None,
        progress=None, record_step_sizes=False, max_plate_nesting=1, graph="compiled"):
    """AIS estimate of log p(x) for each row of ``x``: an :class:`AISResult`.

    :param model: Pyro program ``model(x)`` with its continuous latent sites in a ``"data"`` plate at
        dim -1 (any number of sites).
    :param guide: ``guide(x)`` with the same latent sites.
    :param x: ``(B, ...)`` data.
    :param int num_steps: T annealing steps (T - 1 HMC transitions).
    :param int num_chains: C chains per data point.
    :param int leapfrog_steps: L per transition.
    :param schedule: ``"sigmoid"``, ``"linear"`` or a sequence of betas from 0 to 1.
    :param str init: q0: ``"guide"`` (the trained q(z | x): far fewer steps for the same accuracy)
        or ``"prior"``.
    :param float step_size: initial HMC step size.
    :param int num_pilots: P extra chains per data point that adapt the step size toward acceptance
        0.65; the C counted chains follow them (see :mod:`.step_sizes`: adapting a chain on its own
        history biases its weight). 0: a fixed ``step_size``.
    :param int batch_size: images per chunk (default: about 8192 chain-image rows).
    :param progress: optional callable, called with 1 after each annealing step of each chunk
        (``ceil(B / batch_size) * num_steps`` calls in all).
    :param bool record_step_sizes: keep the pilots' step size of every step (``step_schedule``).
    :param str graph: ``"compiled"`` (default), ``"captured"`` or ``"eager"``: how the log-densities and
        their gradients run after their first evaluation (``LatentSpace.evaluate``): a graph
        replays the same operations without Pyro's interpreter, on the same draws.

    Programs are called without ``num_data`` (unscaled, per data point). Seed with ``pyro.set_rng_seed``.

    Example::

        >>> import pyro_vae as pv
        >>> lik, post = pv.Bernoulli(), pv.DiagonalNormal()
        >>> vae = pv.VAE(pv.MLP(64, [32], post.num_params(2)), pv.MLP(2, [32], lik.num_params(64)),
        ...              prior=pv.StandardNormal(2), likelihood=lik, posterior=post)
        >>> x = torch.bernoulli(torch.full((5, 64), 0.3))
        >>> res = pv.ais(vae.model, vae.guide, x, num_steps=20, num_chains=4, leapfrog_steps=2)
        >>> res.log_likelihood.shape, res.log_weights.shape, res.log_likelihood.dtype
        (torch.Size([5]), torch.Size([4, 5]), torch.float64)
    """
    settings, betas = check_settings(num_steps, num_chains, leapfrog_steps, schedule, init, step_size, num_pilots)
    batch_size = default_batch_size(num_chains + num_pilots) if batch_size is None else \
        check_int("batch_size", batch_size)
    t0 = time.perf_counter()
    parts, pilots, schedules = [], [], []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start: start + batch_size]
        space = LatentSpace(model, guide, xb, num_pilots + num_chains, init, max_plate_nesting, graph)
        u = space.sample_initial()
        steps = PilotStepSizes(num_pilots, num_chains, xb.shape[0], step_size, u.dtype, u.device, record_step_sizes)
        parts.append(anneal(space, u, betas, steps, leapfrog_steps, progress))
        pilots.append(steps.pilot_eps)
        if record_step_sizes:
            schedules.append(steps.schedule())
    log_w, acceptance = (torch.cat(p, dim=1) for p in zip(*parts, strict=False))
    schedule_out = torch.cat(schedules, dim=-1) if record_step_sizes else None
    return AISResult(log_mean_exp(log_w), log_w, acceptance.mean(0), torch.cat(pilots, dim=1), settings,
                     time.perf_counter() - t0, schedule_out)

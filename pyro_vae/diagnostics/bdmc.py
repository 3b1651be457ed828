"""Bidirectional Monte Carlo (BDMC): a sandwich around log p(x) that bounds the error of AIS.

On data simulated from the model itself, (z*, x*) ~ p(z) p(x | z), z* is an exact draw from the
posterior p(z | x*). Forward AIS from q0 on x* gives a stochastic LOWER bound on log p(x*); AIS run
backwards, from z* along the reversed schedule (beta from 1 to 0), gives an unbiased estimate of
1 / p(x*), hence a stochastic UPPER bound (Grosse, Ghahramani & Adams 2015):

    E[log p_hat_forward(x*)]  <=  log p(x*)  <=  -E[log (1/p)_hat_reverse(x*)].

The gap upper - lower bounds the error of forward AIS with the same settings on simulated data.
It holds ONLY on simulated data: on real data there is no exact posterior draw to start the
reverse chain. Wu et al. (2017) read the gap as the accuracy to expect of AIS with the same
schedule, chains and leapfrog steps on real data, to the extent that the real data resemble the
model's own samples (for a well-fitted model they do; an underfitted one's samples are easier).

x* is drawn from the model's own likelihood (``poutine.uncondition``): binary for a Bernoulli
likelihood, as binarised data are. The model must use its ``x`` argument only as the observed
value (and for its shape), as :class:`~pyro_vae.VAE` and the two-layer VAE do.

Reference: Grosse, Ghahramani & Adams (2015), Sandwiching the marginal likelihood using
bidirectional Monte Carlo, arXiv:1511.02543; Wu, Burda, Salakhutdinov & Grosse (2017), ICLR.
"""

import time
from dataclasses import dataclass, field

import pyro.poutine as poutine
import torch

from ..errors import UserError, check_int
from ..inference.traces import sample_sites
from .ais import (
    DEFAULT_CHAINS,
    DEFAULT_LEAPFROG,
    DEFAULT_PILOTS,
    DEFAULT_STEP_SIZE,
    DEFAULT_STEPS,
    AISResult,
    ais,
    anneal,
    check_settings,
    default_batch_size,
    log_mean_exp,
)
from .latent_space import LatentSpace
from .step_sizes import ScheduledStepSizes


@torch.no_grad()
def simulate(model, x, num_points):
    """Draw ``num_points`` pairs (z*, x*) from the model: ``(x_sim (P, ...), {site: z* (P, ...)})``.

    :param x: data rows whose shape (beyond the first dim), dtype and device the simulated points
        take; their values are not used (the model's observed site is sampled instead).
    """
    num_points = check_int("num_points", num_points)
    template = x[:1].expand(num_points, *x.shape[1:]).clone()
    trace = poutine.trace(poutine.uncondition(model)).get_trace(template)
    observed = [s for s in trace.nodes.values() if s["type"] == "sample" and s["infer"].get("was_observed")
                and s["value"].shape == template.shape]
    if len(observed) != 1:
        raise UserError(f"simulating needs one observed site shaped like x {tuple(template.shape)}; "
                        f"the model has {len(observed)}", param="model")
    latents = {s["name"]: s["value"] for s in sample_sites(trace, observed=False)
               if not s["infer"].get("was_observed")}
    return observed[0]["value"].detach(), latents


@dataclass
class BDMCResult:
    """The sandwich on simulated data, per point (P points): ``lower`` ``(P,)`` forward AIS,
    ``upper`` ``(P,)`` reverse AIS (float64, nats), the simulated ``x`` and latent ``z``, the forward
    :class:`~pyro_vae.diagnostics.ais.AISResult` and the reverse chains' log weights ``(C, P)``."""

    lower: torch.Tensor
    upper: torch.Tensor
    x: torch.Tensor
    z: dict
    forward: AISResult
    reverse_log_weights: torch.Tensor
    reverse_acceptance: torch.Tensor
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def gap(self):
        """``upper - lower`` per point ``(P,)``: a bound on forward AIS's error on each (up to Monte-Carlo noise)."""
        return self.upper - self.lower

    def summary(self):
        """JSON-ready means over the points, with the settings."""
        gap = self.gap
        n = gap.numel()
        se = (lambda v: v.std().item() / n ** 0.5) if n > 1 else (lambda v: float("nan"))
        return {"num_points": n, "lower": self.lower.mean().item(), "upper": self.upper.mean().item(),
                "gap_mean": gap.mean().item(), "gap_max": gap.max().item(), "lower_stderr": se(self.lower),
                "upper_stderr": se(self.upper), "gap_stderr": se(gap),
                **self.settings, "acceptance_forward": self.forward.acceptance.mean().item(),
                "acceptance_reverse": self.reverse_acceptance.mean().item(), "seconds": self.seconds}


def reverse_ais(model, guide, x, z, step_schedule, num_steps=DEFAULT_STEPS, num_chains=DEFAULT_CHAINS,
                leapfrog_steps=DEFAULT_LEAPFROG, schedule="sigmoid", init="guide", batch_size=None, progress=None,
                max_plate_nesting=1):
    """Reverse AIS from exact posterior draws ``z`` (``{site: (B, ...)}``) of ``x`` ``(B, ...)``:
    ``(upper (B,), log_weights (C, B), acceptance (B,))``; ``upper`` = -log-mean-exp of the chains'
    log weights, a stochastic upper bound on log p(x) when z ~ p(z | x) exactly.

    :param step_schedule: ``(T - 1, P, B)`` step sizes of the forward run's pilots (its
        ``step_schedule``), used in reverse order: the transition at each beta takes the step size
        the forward run used at that beta. Adapting here instead would make the kernels depend on z.
    """
    settings, betas = check_settings(num_steps, num_chains, leapfrog_steps, schedule, init, 1.0, 0)
    batch_size = default_batch_size(num_chains) if batch_size is None else check_int("batch_size", batch_size)
    if step_schedule.shape[0] != settings["num_steps"] - 1 or step_schedule.shape[-1] != x.shape[0]:
        raise ValueError(f"step_schedule must be (T - 1, P, B) = ({settings['num_steps'] - 1}, P, {x.shape[0]}), "
                         f"got {tuple(step_schedule.shape)}")
    parts = []
    for start in range(0, x.shape[0], batch_size):
        stop = start + batch_size
        space = LatentSpace(model, guide, x[start:stop], num_chains, init, max_plate_nesting)
        zb = {name: value[start:stop].expand(num_chains, *value[start:stop].shape) for name, value in z.items()}
        steps = ScheduledStepSizes(step_schedule[..., start:stop].flip(0), num_chains)
        parts.append(anneal(space, space.flatten(zb), betas.flip(0), steps, leapfrog_steps, progress))
    log_w, acceptance = (torch.cat(p, dim=1) for p in zip(*parts, strict=False))
    return -log_mean_exp(log_w), log_w, acceptance.mean(0)


def bdmc(model, guide, num_points, num_steps=DEFAULT_STEPS, x=None, num_chains=DEFAULT_CHAINS,
         leapfrog_steps=DEFAULT_LEAPFROG, schedule="sigmoid", init="guide", step_size=DEFAULT_STEP_SIZE,
         num_pilots=DEFAULT_PILOTS, batch_size=None, progress=None, max_plate_nesting=1):
    """Simulate ``num_points`` data points from the model and sandwich their log p(x*) between
    forward AIS (lower) and reverse AIS from the true latents (upper): a :class:`BDMCResult`.

    :param int num_points: P simulated points.
    :param int num_steps: T (both directions).
    :param x: data rows of the shape the model takes (required; only the shape, dtype and device
        are used). The other parameters are :func:`~pyro_vae.diagnostics.ais.ais`'s, used in both
        directions (the reverse run replays the forward pilots' step sizes); ``progress`` is called
        with 1 after each step (2 x chunks x T calls).

    Example::

        >>> import pyro_vae as pv
        >>> lik, post = pv.Bernoulli(), pv.DiagonalNormal()
        >>> vae = pv.VAE(pv.MLP(64, [32], post.num_params(2)), pv.MLP(2, [32], lik.num_params(64)),
        ...              prior=pv.StandardNormal(2), likelihood=lik, posterior=post)
        >>> x = torch.bernoulli(torch.full((5, 64), 0.3))
        >>> sand = pv.bdmc(vae.model, vae.guide, num_points=3, num_steps=20, x=x, num_chains=4, leapfrog_steps=2)
        >>> sand.lower.shape, sand.upper.shape, sand.x.shape, bool(((sand.x == 0) | (sand.x == 1)).all())
        (torch.Size([3]), torch.Size([3]), torch.Size([3, 64]), True)
    """
    if x is None:
        raise UserError("bdmc needs x: data rows whose shape the simulated points take", param="x")
    settings, _ = check_settings(num_steps, num_chains, leapfrog_steps, schedule, init, step_size, num_pilots)
    t0 = time.perf_counter()
    x_sim, z_sim = simulate(model, x, num_points)
    common = dict(num_steps=num_steps, num_chains=num_chains, leapfrog_steps=leapfrog_steps, schedule=schedule,
                  init=init, batch_size=batch_size, progress=progress, max_plate_nesting=max_plate_nesting)
    forward = ais(model, guide, x_sim, step_size=step_size, num_pilots=num_pilots, record_step_sizes=True, **common)
    upper, log_w, acceptance = reverse_ais(model, guide, x_sim, z_sim, forward.step_schedule, **common)
    return BDMCResult(forward.log_likelihood, upper, x_sim, z_sim, forward, log_w, acceptance, settings,
                      time.perf_counter() - t0)

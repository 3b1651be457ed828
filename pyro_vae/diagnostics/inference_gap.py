"""Where the gap comes from: approximation vs amortization (Cremer, Li & Duvenaud 2018).

The gap between log p(x) and the ELBO of the amortised guide q(z|x) = posterior(encoder(x)) splits
into two parts:

    log p(x) - ELBO(q) = [log p(x) - ELBO(q*)]  +  [ELBO(q*) - ELBO(q)]
                          approximation gap        amortization gap

where q* is the best member of the same family for each point on its own. Here q* is found by
making the encoder's outputs for the chosen points free parameters, initialised at the encoder's
output, and maximising the ELBO with Adam (SVI with Pyro's ``Trace_ELBO``). The posterior family
reads those outputs, so q* is the same family whatever it is (diagonal Normal, low rank, IAF,
Delta, ...), and no family needs code here.

Which calls become free: the posterior family is called once per latent site (in order); a call
whose input does not depend on the particle draws (its shape is the same under 2 and 3 particles)
is a function of x alone and is freed; conditionals on other latents (q(z2 | z1) in a hierarchical
guide) stay amortised. Global parameters of the family (e.g. IAF weights) stay fixed.

Reference: Cremer, Li & Duvenaud (2018), Inference Suboptimality in Variational Autoencoders, ICML.
"""

import itertools
import math

import pyro.poutine as poutine
import torch
from pyro.infer import Trace_ELBO

from ..errors import check_int
from ..inference.traces import particle_plate
from .bounds import mixture_iwae
from .tightness import mean_and_stderr, point_statistics

DEFAULT_STEPS = 500
DEFAULT_LR = 1e-2
DEFAULT_PARTICLES = 10


def free_guide(guide, family, x, max_plate_nesting=1):
    """A copy of ``guide`` whose x-only inputs to ``family`` are free parameters for these ``x``.

    :param guide: Pyro program ``guide(x)``.
    :param torch.nn.Module family: the posterior family
        module the guide calls with the encoder's output (``vae.posterior``).
    :returns: ``(guide_star, params)``: the new guide (to be called with this same ``x``) and the
        list of free leaf tensors, initialised at the encoder's outputs.
    """
    inputs = {}
    for k in (2, 3):
        inputs[k] = _recorded_inputs(guide, family, x, k, max_plate_nesting)
    free = {i: a.clone().requires_grad_() for i, (a, b) in enumerate(zip(inputs[2], inputs[3], strict=False))
            if a.shape == b.shape}
    if not free:
        raise ValueError(f"the guide never calls {type(family).__name__} with an input that depends on x "
                         "alone; there is no amortised output to free")

    def guide_star(*args, **kwargs):
        calls = itertools.count()

        def swap(module, args_):
            i = next(calls)
            if i in free:
                if args_[0].shape != free[i].shape:
                    raise ValueError("guide_star must be called with the x it was built for")
                return (free[i],) + tuple(args_[1:])

        handle = family.register_forward_pre_hook(swap)
        try:
            return guide(*args, **kwargs)
        finally:
            handle.remove()

    return guide_star, list(free.values())


@torch.no_grad()
def _recorded_inputs(guide, family, x, num_samples, max_plate_nesting):
    recorded = []
    handle = family.register_forward_pre_hook(lambda module, args: recorded.append(args[0].detach()))
    try:
        poutine.block(particle_plate(num_samples, max_plate_nesting)(guide))(x)
    finally:
        handle.remove()
    return recorded


def optimise_locally(model, guide_star, params, x, steps=DEFAULT_STEPS, lr=DEFAULT_LR,
                     num_particles=DEFAULT_PARTICLES, max_plate_nesting=1, progress=None):
    """Maximise the ELBO of ``guide_star`` over ``params`` alone (model and encoder fixed).

    The ELBO is a sum over data points and each point's outputs enter only its own term, so one
    batched Adam run is ``len(x)`` independent per-point optimisations. The learning rate decays
    geometrically to ``lr / 10`` so the last steps settle rather than jitter.
    :returns: the per-step ELBO estimates (mean over points), a list of floats.
    """
    elbo = Trace_ELBO(num_particles=num_particles, vectorize_particles=num_particles > 1,
                      max_plate_nesting=max_plate_nesting)
    optimiser = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma=0.1 ** (1.0 / max(steps, 1)))
    trajectory = []
    with torch.enable_grad():
        for _ in range(steps):
            loss = elbo.differentiable_loss(model, guide_star, x)
            grads = torch.autograd.grad(loss, params)
            for p, g in zip(params, grads, strict=False):
                p.grad = g
            optimiser.step()
            schedule.step()
            trajectory.append(-loss.item() / x.shape[0])
            if progress is not None:
                progress(1)
    return trajectory


def inference_gaps(vae, x, num_samples=5000, steps=DEFAULT_STEPS, lr=DEFAULT_LR,
                   num_particles=DEFAULT_PARTICLES, chunk_size=None, progress=None):
    """Cremer et al.'s decomposition for the points ``x`` of a :class:`~pyro_vae.models.vae.VAE`.

    ELBO(q) and ELBO(q*) are the mean log weights of S draws (as in
    :func:`~pyro_vae.diagnostics.tightness.point_statistics`); log p(x) is estimated from S draws of each of q
    and q* with their equal mixture as proposal (:func:`~pyro_vae.diagnostics.bounds.mixture_iwae`): it is at
    least as good as either alone in tail behaviour, and, like any IWAE estimate, a stochastic lower
    bound, so with heavy-tailed weights the approximation gap is underestimated.

    :returns: dict (nats per data point) with ``approximation_gap``, ``amortization_gap``,
        ``inference_gap`` (their sum), ``elbo_q``, ``elbo_q_star``, ``log_likelihood``, ``stderr``
        over points, ``num_images``, ``steps``, ``lr``, ``num_particles`` and the optimisation's
        ``elbo_trajectory`` (first and last step).
    """
    num_samples, steps = check_int("num_samples", num_samples), check_int("steps", steps)
    num_particles = check_int("num_particles", num_particles)
    amortised = point_statistics(vae.model, vae.guide, x, num_samples, (1,), chunk_size)
    guide_star, params = free_guide(vae.guide, vae.posterior, x)
    trajectory = optimise_locally(vae.model, guide_star, params, x, steps, lr, num_particles,
                                  progress=progress)
    local = point_statistics(vae.model, guide_star, x, num_samples, (1,), chunk_size)
    log_p = mixture_iwae(vae.model, [vae.guide, guide_star], x, num_samples, chunk_size)
    per_point = {
        "approximation_gap": log_p - local["elbo"],
        "amortization_gap": local["elbo"] - amortised["elbo"],
        "inference_gap": log_p - amortised["elbo"],
        "elbo_q": amortised["elbo"],
        "elbo_q_star": local["elbo"],
        "log_likelihood": log_p,
    }
    result, stderr = {}, {}
    for key, values in per_point.items():
        result[key], stderr[key] = mean_and_stderr(values)
    result.update(stderr=stderr, num_images=int(x.shape[0]), num_samples=num_samples, steps=steps, lr=lr,
                  num_particles=num_particles,
                  elbo_trajectory={"first": trajectory[0] if trajectory else math.nan,
                                   "last": trajectory[-1] if trajectory else math.nan})
    return result


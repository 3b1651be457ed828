"""Training objectives by name: each builds a Pyro ELBO with vectorised particles.

``trace``          Trace_ELBO: KL(q || p) estimated by sampling, log q(z|x) - log p(z).
``meanfield``      TraceMeanField_ELBO: analytic KL where torch's ``kl_divergence`` registry has the
                   (q, p) pair; Pyro falls back to sampling silently otherwise.
``jit-trace``      JitTrace_ELBO.
``jit-meanfield``  JitTraceMeanField_ELBO with Pyro 1.9.2's recompilation bug worked around.
``iwae:K``         :class:`IWAE_ELBO`: the importance-weighted bound with K vectorised particles.
``stl``            :class:`~pyro_vae.inference.estimators.STL_ELBO`: ``trace`` with the path-derivative
                   ("sticking the landing") gradient.
``iwae-dreg:K``    :class:`~pyro_vae.inference.estimators.IWAE_DReG_ELBO`: ``iwae:K`` with the
                   doubly-reparameterised gradient.
``enum``           :class:`~pyro_vae.inference.enumeration.EnumELBO`: TraceEnum_ELBO, discrete latents summed out.
``em[:PSEUDO]``    :class:`~pyro_vae.inference.em.EM`: closed-form EM iterations (mixture models).

Beta-VAE and KL warm-up (:func:`kl_scale`) are not objectives of their own: the model scales its
latent sites, in model and guide, by ``poutine.scale`` when ``fit`` passes ``kl_scale=...``, so every
objective above (``meanfield``'s analytic KL included) weighs ``log p(z) - log q(z|x)`` by it.

JIT objectives compile once per distinct keyword arguments (here ``num_data`` and ``kl_scale``) and
assume the same tensor shapes on every call: train them with a fixed batch size (``fit`` drops the
ragged last batch). A KL warm-up over W epochs therefore compiles W + 1 graphs, one per epoch's scale.
"""

import contextlib
import math
import warnings

import torch
from pyro.distributions.util import is_identically_zero
from pyro.infer import JitTrace_ELBO, JitTraceMeanField_ELBO, RenyiELBO, TraceMeanField_ELBO
from pyro.infer.util import get_dependent_plate_dims, torch_sum
from pyro.util import warn_if_nan

from ..errors import UserError, check_int, check_positive
from .elbo_registry import REGISTRY, ElboContext, own_particles, pyro_elbo
from .em import EM
from .enumeration import EnumELBO  # noqa: F401 (registers enum where it is defined)


@contextlib.contextmanager
def jit_trace_notice_ignored():
    """Silence torch's deprecation notice of ``torch.jit.trace`` (torch 2.9+), which Pyro's JIT
    objectives call when they compile; nothing else is filtered, and only inside the block."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`torch.jit.trace` is deprecated", category=FutureWarning)
        yield


class QuietJit:
    """Mixin for Pyro's JIT objectives: their compilation runs under :func:`jit_trace_notice_ignored`."""

    def loss(self, model, guide, *args, **kwargs):
        with jit_trace_notice_ignored():
            return super().loss(model, guide, *args, **kwargs)

    def loss_and_grads(self, model, guide, *args, **kwargs):
        with jit_trace_notice_ignored():
            return super().loss_and_grads(model, guide, *args, **kwargs)

    def differentiable_loss(self, model, guide, *args, **kwargs):
        with jit_trace_notice_ignored():
            return super().differentiable_loss(model, guide, *args, **kwargs)


@REGISTRY.register("jit-trace", "compiled trace",
                   build=lambda cls, _, ctx: pyro_elbo(cls, _, ctx, ignore_jit_warnings=True))
class QuietJitTrace_ELBO(QuietJit, JitTrace_ELBO):
    """Pyro's :class:`~pyro.infer.JitTrace_ELBO`, compiling without torch's deprecation notice."""


@REGISTRY.register("jit-meanfield", "compiled meanfield",
                   build=lambda cls, _, ctx: pyro_elbo(cls, _, ctx, ignore_jit_warnings=True))
class CachedJitTraceMeanField_ELBO(QuietJit, JitTraceMeanField_ELBO):
    """JitTraceMeanField_ELBO that compiles once.

    Pyro 1.9.2's ``differentiable_loss`` tests ``self._loss_and_surrogate_loss`` for a cached
    compiled closure but stores it as ``self._differentiable_loss``, so every call builds and traces
    a new closure (about 3x slower than Trace_ELBO). Here the cached closure is reused.
    """

    _differentiable_loss = None  # Pyro's compiled closure, once built

    def differentiable_loss(self, model, guide, *args, **kwargs):
        compiled = self._differentiable_loss
        if compiled is None:  # first call: Pyro builds, traces and caches the closure
            return super().differentiable_loss(model, guide, *args, **kwargs)
        kwargs["_pyro_model_id"] = id(model)
        kwargs["_pyro_guide_id"] = id(guide)
        return compiled(*args, **kwargs)


def subsample_scale(site):
    """The factor N / B that subsampled plates put on ``site``'s log-density (1 when none is)."""
    scale = 1.0
    for frame in site["cond_indep_stack"]:
        if frame.full_size is not None and frame.size not in (None, -1):
            scale = scale * frame.full_size / frame.size
    return scale


@REGISTRY.register("iwae", "importance-weighted bound, K particles (IWAE_ELBO: per-point log-mean-exp, then the N/B "
                   "scale)", arg="K", cast=int, attr="num_particles", example=5, build=own_particles)
class IWAE_ELBO(RenyiELBO):
    """Importance-weighted bound (Burda et al. 2016) with K vectorised particles, per data point:

        L_K = sum_n log (1/K) sum_k w_kn,   w_kn = p(x_n, z_kn) / q(z_kn | x_n),   z_kn ~ q(z | x_n).

    This is :class:`~pyro.infer.RenyiELBO` with ``alpha=0``, with one change. Pyro's RenyiELBO
    keeps the ``"data"`` plate's dim, so every data point gets its own log-mean-exp, but it takes
    it of log-densities already multiplied by the minibatch scale N / B: with ``num_data`` it
    computes ``sum_n log mean_k w_kn^(N/B)``, a tempered objective dominated by the largest weight,
    not ``(N/B) sum_n log mean_k w_kn``. Here the scale of subsampled plates is divided out of each
    site's log-density before the log-mean-exp and applied after it, so the minibatch objective is
    an unbiased estimate of the full-data L_K. Other scales (``poutine.scale``, e.g. a beta) stay
    inside the weights. Unscaled (no ``num_data``) both agree.

    The gradient is that of ``L_K`` itself (reparameterised guides only): the normalised weights
    times the gradients of the log weights, as in the paper. ``K = 1`` is ``Trace_ELBO``.
    """

    name = "iwae"  # the objective's spec is name:K
    #: A KL weight (beta, warm-up: ``poutine.scale`` on the latent sites) may stay inside the weights.
    weighted_latents = True

    def __init__(self, num_particles=2, max_plate_nesting=1):
        super().__init__(alpha=0, num_particles=num_particles, max_plate_nesting=max_plate_nesting,
                         vectorize_particles=True)

    @property
    def spec(self):
        """The spec that builds this objective (``iwae:5``)."""
        return spec_of(self)

    def log_weights(self, model, guide, *args, **kwargs):
        """Log weights ``(K, B)`` without the minibatch scale, and that scale N / B (a float)."""
        return self.weights_of(*next(self._get_traces(model, guide, args, kwargs)))

    def weights_of(self, model_trace, guide_trace):
        """:meth:`log_weights` read from given traces (log-densities computed, subsample sites pruned)."""
        sum_dims = get_dependent_plate_dims(model_trace.nodes.values())
        log_w, scales = 0.0, set()
        for sign, trace in ((1.0, model_trace), (-1.0, guide_trace)):
            for site in trace.nodes.values():
                if site["type"] != "sample":
                    continue
                if sign < 0 and not is_identically_zero(site["score_parts"].score_function):
                    raise UserError(f"{self.spec} needs reparameterised guide sites; "
                                    f"{site['name']!r} is not", param="elbo")
                scale = subsample_scale(site)
                scales.add(scale)
                log_w = log_w + sign * torch_sum(site["log_prob"], sum_dims) / scale
        if len(scales) != 1:
            raise NotImplementedError(f"{self.name}:K needs every sample site in the same subsampled 'data' plate")
        if self.num_particles == 1:  # Pyro adds no particle plate for one particle
            log_w = log_w.unsqueeze(0)
        return log_w, scales.pop()

    def differentiable_loss(self, model, guide, *args, **kwargs):
        log_w, scale = self.log_weights(model, guide, *args, **kwargs)  # (K, B)
        log_mean_w = torch.logsumexp(log_w, dim=0) - math.log(self.num_particles)  # (B,)
        return -scale * log_mean_w.sum()

    @torch.no_grad()
    def loss(self, model, guide, *args, **kwargs):
        loss = self.differentiable_loss(model, guide, *args, **kwargs).item()
        warn_if_nan(loss, "loss")
        return loss

    def loss_and_grads(self, model, guide, *args, **kwargs):
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        if loss.requires_grad:
            loss.backward()
        loss = loss.item()
        warn_if_nan(loss, "loss")
        return loss


def is_jit(elbo):
    return isinstance(elbo, (JitTrace_ELBO, JitTraceMeanField_ELBO))


def spec_of(elbo):
    """The spec that builds an objective like ``elbo`` (``iwae:5``), or its class name."""
    return REGISTRY.spec_of(elbo) or type(elbo).__name__


def make_elbo(name="trace", num_particles=1, max_plate_nesting=1):
    """Build the objective a spec names (``trace``, ..., ``iwae:K``) with ``num_particles`` vectorised particles.

    Example::

        >>> make_elbo("meanfield")
        <pyro.infer.trace_mean_field_elbo.TraceMeanField_ELBO object at ...>
        >>> make_elbo("iwae:5").num_particles, make_elbo("trace", num_particles=4).vectorize_particles
        (5, True)
    """
    num_particles = check_int("num_particles", num_particles)
    check_int("max_plate_nesting", max_plate_nesting)
    return REGISTRY.build(name, ElboContext(num_particles, max_plate_nesting))


def check_model(elbo, model, name=None, beta=1.0, kl_warmup=0):
    """Raise a one-line :class:`UserError` when ``elbo`` cannot train ``model`` as intended
    (with KL weight ``beta`` and warm-up ``kl_warmup``, as ``fit`` takes them).

    - ``iwae:K`` with a point-mass posterior (``model.point_mass``): its K
      samples are equal and ``log q`` is no density.
    - ``meanfield`` or ``iwae:K`` with a discrete latent (no reparameterised draw); ``em`` with a
      model EM cannot fit (``model.supports_em``).
    - ``meanfield`` with a guide that samples its latents in another order than the model (the
      model declares ``mean_field_guide = False``): Pyro's per-site analytic KL would then pair
      q(z2 | x) with p(z2 | z1) at a z1 drawn after z2 and be biased (Pyro only warns).

    - ``iwae-dreg:K`` with a KL weight: its gradient identity needs the weights p / q unweighted.

    :param model: a :class:`~pyro_vae.models.base.LatentModel`.
    """
    if isinstance(elbo, IWAE_ELBO) and not elbo.weighted_latents and (beta != 1.0 or kl_warmup):
        raise UserError(f"{elbo.spec} needs the weights p / q without a KL weight; use beta=1 and kl_warmup=0, "
                        f"or elbo='iwae:{elbo.num_particles}'", param=("beta", "kl_warmup", "elbo"))
    if isinstance(elbo, IWAE_ELBO) and model.point_mass:
        raise UserError(f"{elbo.spec} weights samples of q(z|x), but the "
                        f"{type(model.posterior).__name__.lower()} posterior is a point mass (equal samples, no "
                        "density); use elbo='trace' or elbo='meanfield'", param="elbo")
    if model.discrete_latent and isinstance(elbo, (TraceMeanField_ELBO, IWAE_ELBO)):
        raise UserError(f"{name or type(model).__name__} has a discrete latent, which has no reparameterised draw "
                        "for meanfield or iwae:K; use elbo='enum' (exact sums over z), elbo='trace' (score "
                        "function) or elbo='em'", param="elbo")
    if isinstance(elbo, EM) and not model.supports_em:
        raise UserError(f"em needs a model with a discrete latent, its exact posterior as guide and a likelihood "
                        f"with a closed-form M-step (bernoulli, normal:SCALE, normal-hetero); "
                        f"{name or type(model).__name__} has not; use elbo='enum'", param="elbo")
    if isinstance(elbo, TraceMeanField_ELBO) and not model.mean_field_guide:
        raise UserError(f"{name or type(model).__name__} has a guide that samples its latents in another order "
                        "than its model, so meanfield's analytic KL would be biased; use elbo='trace' (or "
                        "jit-trace, iwae:K)", param="elbo")


def kl_scale(epoch, beta=1.0, warmup=0):
    """Weight of the latent sites' ``log p(z) - log q(z|x)`` in ``epoch`` (1-based), or None for 1.

    ``beta * min(1, epoch / warmup)``: a linear warm-up (Bowman et al. 2016; Sonderby et al. 2016)
    that starts at ``beta / warmup`` rather than 0, since ``poutine.scale`` rejects a zero scale,
    and is constant within an epoch so a JIT objective compiles once per epoch of warm-up.
    """
    check_positive("beta", beta)
    weight = beta * min(1.0, epoch / warmup) if warmup else beta
    return None if weight == 1.0 else float(weight)


from . import estimators  # noqa: E402,F401  (registers stl and iwae-dreg:K, which build on IWAE_ELBO)

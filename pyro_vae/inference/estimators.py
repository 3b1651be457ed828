"""Path-derivative gradient estimators: sticking the landing (``stl``) and DReG for IWAE (``iwae-dreg:K``).

Both keep the value of the objective they estimate (``trace``'s ELBO, ``iwae:K``'s bound: same
draws, same number) and change only the gradient with respect to the guide's parameters phi. The
reparameterised draw ``z = z_phi(eps)`` keeps its gradient, while ``log q_phi(z | x)`` is scored with
phi *stopped*, which drops the score-function term ``d/dphi log q_phi(z)`` at fixed z (zero in
expectation, but noisy):

- :class:`STL_ELBO` (Roeder, Wu & Duvenaud 2017): ``Trace_ELBO`` with that change. Unbiased, and its
  encoder gradient is exactly zero for every draw when q is the true posterior (``log p(x, z) -
  log q(z|x) = log p(x)`` for every z).
- :class:`IWAE_DReG_ELBO` (Tucker, Lawson, Gu & Maddison 2019): for ``L_K = log mean_k w_k`` the
  encoder gradient ``sum_k w~_k^2 d log w_k / d z_k  d z_k / d phi`` (normalised weights squared,
  q's parameters stopped in ``log w_k``), the model's parameters ``sum_k w~_k d log w_k / d theta``
  as in IWAE. Minibatch scaling exactly as :class:`~pyro_vae.inference.objectives.IWAE_ELBO`.

How phi is stopped, for any guide and any reparameterised family (:func:`stopped_traces`): the guide
runs once and draws z; then it is replayed on copies of its own draws (``clone()``: same value, same
gradient path to phi) with every Pyro parameter its trace records (``pyro.param``, ``pyro.module``)
frozen (``requires_grad`` off during the replay and its scoring only), and the objective scores that
replay. The replay builds each site's distribution afresh from the frozen parameters, so a
conditional on an earlier draw (a bottom-up guide's ``q(z1 | z2)``) keeps the path through ``z2``.
For a ``TransformedDistribution`` (the ``iaf:N`` family) two details matter. The copy: a flow caches
the base sample it drew and returns it when asked to invert its own output, and that base sample
depends on phi directly; the copy is another tensor, so the flow inverts it afresh with frozen
parameters (for Pyro's ``AffineAutoregressive``, Z sequential passes of its MADE per flow: the price
of STL and DReG with IAF). And the scoring inside the freeze: a flow's log-density is computed when
asked, not when the distribution is built. A guide with a single latent site whose distribution
holds only tensors (``diag``, ``lowrank:R``, ``full``) takes a cheaper route to the same gradient:
that distribution with its tensors detached (:func:`detached`), no second run. DReG multiplies the
gradient reaching each copy by ``w~_k`` with a tensor hook; the other ``w~_k`` comes from
differentiating the log-mean-exp.

Limits: on the replay route, guide parameters that are not Pyro parameters (a module the guide never registers with
``pyro.module``) are not stopped, so their score term stays (still unbiased); a guide site without
``rsample`` or a ``pyro.factor`` in the guide is refused. DReG also refuses latent sites weighted by
``poutine.scale`` (beta, KL warm-up): its identity assumes the weights are ``p / q``.
"""

import contextlib
import copy
import math
import warnings

import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import Trace_ELBO
from pyro.infer.util import is_validation_enabled
from pyro.poutine.util import prune_subsample_sites, site_is_subsample
from pyro.util import check_model_guide_match, check_site_shape, warn_if_nan
from torch.distributions import Distribution

from ..errors import UserError
from .elbo_registry import REGISTRY, own_particles, pyro_elbo
from .objectives import IWAE_ELBO, spec_of, subsample_scale


@contextlib.contextmanager
def frozen(params):
    """``requires_grad`` off for the leaf tensors ``params`` inside the block, restored after it.

    Operations inside see them as constants; graphs built before the block keep their gradient
    (the flags are back on before anyone calls ``backward``).
    """
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        with warnings.catch_warnings():  # pyro.module says it skips them: that is the point
            warnings.filterwarnings("ignore", message=".*not registered in the param store because requires_grad=False")
            yield
    finally:
        for p, flag in zip(params, flags, strict=False):
            p.requires_grad_(flag)


def detached(fn):
    """A copy of the distribution ``fn`` with its tensors detached (nested distributions too), or None
    when it holds anything else, such as a flow's transforms and their modules."""
    copied = copy.copy(fn)
    for key, value in vars(fn).items():
        if isinstance(value, torch.Tensor):
            copied.__dict__[key] = value.detach()
        elif isinstance(value, Distribution):
            copied.__dict__[key] = detached(value)
            if copied.__dict__[key] is None:
                return None
        elif not isinstance(value, (bool, int, float, str, torch.Size, type(None))):
            return None
    return copied


def stopped_traces(model, guide, args, kwargs, objective, max_plate_nesting, weights=None, replay=None):
    """Draw from ``guide``, then score its draws with its parameters stopped; replay ``model`` on them.

    Like Pyro's ``get_importance_trace``: returns ``(model_trace, guide_trace)`` with subsample sites
    pruned, ``log_prob`` computed for the model and ``score_parts`` for the guide, checked under
    Pyro's validation. But each latent site of the guide trace holds a copy (``clone()``) of the
    draw, scored by its distribution with the guide's parameters stopped:

    - in general (``replay`` True) the guide is replayed at the copies, run *and scored* with every
      Pyro parameter its first run recorded frozen (a flow computes its log-density when asked, so
      scoring must happen inside the freeze too);
    - with a single latent site whose distribution holds only tensors (``diag``, ``lowrank:R``,
      ``full``), the same is had for less: that distribution with its tensors detached
      (:func:`detached`), which saves the guide's second run. ``replay=None`` picks this when it applies.

    :param str objective: the objective's spec, for error messages.
    :param dict weights: when given, the gradient reaching each copy is multiplied by
        ``weights["w"]`` (normalised importance weights, ``(K, B)``), which the caller fills in after
        computing the weights and before ``backward`` (DReG's second ``w~``).
    """
    guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
    copies = {}  # the draws to score: copies, same values and gradient paths
    for name, site in guide_trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        if site["is_observed"]:
            raise UserError(f"{objective} scores the guide with its parameters stopped; the guide's "
                            f"observed or pyro.factor site {name!r} would lose its gradient; use "
                            "elbo='trace'", param="elbo")
        if not site["fn"].has_rsample:
            raise UserError(f"{objective} needs reparameterised guide sites; {name!r} is not "
                            f"({type(site['fn']).__name__}); use elbo='trace'", param="elbo")
        value = site["value"].clone()  # (..., B, Z)
        if weights is not None and value.requires_grad:
            value.register_hook(_weighted(weights, value.dim() - site["fn"].event_dim))
        copies[name] = value
    fn = detached(guide_trace.nodes[next(iter(copies))]["fn"]) if len(copies) == 1 and not replay else None
    if fn is not None:
        name, site = next(iter(copies)), guide_trace.nodes[next(iter(copies))]
        guide_trace = guide_trace.copy()
        guide_trace.nodes[name] = dict(site, value=copies[name], fn=fn)
        scored = prune_subsample_sites(guide_trace)
        scored.compute_score_parts()
    else:
        store = dict(pyro.get_param_store().named_parameters())
        params = [store[n] for n, site in guide_trace.nodes.items() if site["type"] == "param" and n in store]
        draws = poutine.Trace()
        for name, value in copies.items():
            draws.add_node(name, **dict(guide_trace.nodes[name], value=value))
        with frozen(params):
            guide_trace = poutine.trace(poutine.replay(guide, trace=draws)).get_trace(*args, **kwargs)
            scored = prune_subsample_sites(guide_trace)
            scored.compute_score_parts()  # log q(z|x) at the stopped parameters
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    if is_validation_enabled():
        check_model_guide_match(model_trace, guide_trace, max_plate_nesting)
    model_trace = prune_subsample_sites(model_trace)
    model_trace.compute_log_prob()
    if is_validation_enabled():
        for trace in (model_trace, scored):
            for site in trace.nodes.values():
                if site["type"] == "sample":
                    check_site_shape(site, max_plate_nesting)
    return model_trace, scored


def _weighted(weights, batch_dim):
    """A gradient hook multiplying a ``(K, B, *event)`` gradient by ``weights["w"]`` per (k, b)."""
    def hook(grad):
        w = weights["w"]  # (K, B)
        if w.numel() != math.prod(grad.shape[:batch_dim]):
            raise NotImplementedError("iwae-dreg:K needs every latent site in the 'data' plate")
        return grad * w.reshape(grad.shape[:batch_dim] + (1,) * (grad.dim() - batch_dim))
    return hook


@REGISTRY.register("stl", "Trace_ELBO with the path-derivative gradient, sticking the landing (STL_ELBO)",
                   build=pyro_elbo)
class STL_ELBO(Trace_ELBO):
    """``Trace_ELBO`` with the path-derivative ("sticking the landing") gradient of Roeder, Wu &
    Duvenaud (2017): ``log q(z|x)`` is scored with the guide's parameters stopped (see the module
    docstring), so the gradient drops the score-function term. The loss value is ``Trace_ELBO``'s
    for the same draws; the gradient is unbiased and, when q is the exact posterior, exactly zero
    for the guide's parameters. Works with vectorised particles, ``poutine.scale`` (beta, warm-up)
    and ``SVI``.

    Example::

        >>> import pyro, pyro_vae as pv
        >>> vae = pv.VAE(pv.MLP(6, [8], 4), pv.MLP(2, [8], 6), z_dim=2)
        >>> x = torch.bernoulli(torch.full((5, 6), 0.4))
        >>> pyro.set_rng_seed(0); stl = pv.make_elbo("stl").loss(vae.model, vae.guide, x)
        >>> pyro.set_rng_seed(0); trace = pv.make_elbo("trace").loss(vae.model, vae.guide, x)
        >>> stl == trace
        True
    """

    @property
    def spec(self):
        """The spec that builds this objective (``stl``)."""
        return spec_of(self)

    def _get_trace(self, model, guide, args, kwargs):
        return stopped_traces(model, guide, args, kwargs, self.spec, self.max_plate_nesting)


@REGISTRY.register("iwae-dreg", "iwae:K with the doubly-reparameterised gradient (IWAE_DReG_ELBO)", arg="K",
                   cast=int, attr="num_particles", example=5, build=own_particles)
class IWAE_DReG_ELBO(IWAE_ELBO):
    """The importance-weighted bound of :class:`~pyro_vae.inference.objectives.IWAE_ELBO` (same value,
    same draws, same N/B scaling after the per-point log-mean-exp) with the doubly-reparameterised
    gradient of Tucker et al. (2019): the guide's parameters get
    ``sum_k w~_k^2 d log w_k / d z_k  d z_k / d phi`` (q's parameters stopped in ``log w_k``), the
    model's parameters ``sum_k w~_k d log w_k / d theta`` as in IWAE. Unbiased for the gradient of
    ``L_K``; the guide's gradient signal-to-noise ratio grows with K where IWAE's falls (Rainforth et
    al. 2018). ``K = 1`` is :class:`STL_ELBO`.

    Example::

        >>> import pyro, pyro_vae as pv
        >>> vae = pv.VAE(pv.MLP(6, [8], 4), pv.MLP(2, [8], 6), z_dim=2)
        >>> x = torch.bernoulli(torch.full((5, 6), 0.4))
        >>> pyro.set_rng_seed(0); dreg = pv.make_elbo("iwae-dreg:5").differentiable_loss(vae.model, vae.guide, x)
        >>> pyro.set_rng_seed(0); iwae = pv.make_elbo("iwae:5").differentiable_loss(vae.model, vae.guide, x)
        >>> torch.allclose(dreg, iwae)
        True
    """

    name = "iwae-dreg"
    weighted_latents = False  # the DReG identity needs w = p / q (checked again at every call)

    def differentiable_loss(self, model, guide, *args, **kwargs):
        model, guide = self._vectorized_num_particles(model), self._vectorized_num_particles(guide)
        weights = {}
        model_trace, stopped_trace = stopped_traces(model, guide, args, kwargs, self.spec, self.max_plate_nesting,
                                                    weights=weights)
        self._check_unweighted(stopped_trace)
        log_w, scale = self.weights_of(model_trace, stopped_trace)  # (K, B)
        weights["w"] = torch.softmax(log_w.detach(), dim=0)  # w~_k per data point, for the hooks
        log_mean_w = torch.logsumexp(log_w, dim=0) - math.log(self.num_particles)  # (B,)
        return -scale * log_mean_w.sum()

    @torch.no_grad()
    def loss(self, model, guide, *args, **kwargs):
        """The bound's value, computed as ``IWAE_ELBO`` does (no replay is needed without a gradient)."""
        loss = IWAE_ELBO.differentiable_loss(self, model, guide, *args, **kwargs).item()
        warn_if_nan(loss, "loss")
        return loss

    def _check_unweighted(self, trace):
        for site in trace.nodes.values():
            if site["type"] == "sample" and not site["is_observed"]:
                extra = site["scale"] / subsample_scale(site)
                if not math.isclose(float(extra), 1.0, rel_tol=1e-6):
                    raise UserError(f"{self.spec} needs the weights p / q without a KL weight, but site "
                                    f"{site['name']!r} has one of {float(extra):g}; use beta=1 and kl_warmup=0, "
                                    f"or elbo='iwae:{self.num_particles}'", param=("beta", "kl_warmup", "elbo"))

"""Each training objective's loss and surrogate loss as tensors, read from its own traces: no ``.item()``.

Pyro's ``Trace_ELBO`` and ``TraceMeanField_ELBO`` read the loss value as a Python float while they
compute it (``torch_item``) and test it for NaN (``warn_if_nan``), so a graph of tensor operations
cannot be captured through them. :func:`surrogate_loss` gives the same two numbers as tensors, built
from the objective's own traces (``elbo._get_traces``: the same particles, the same vectorisation,
the same checks) with the same operations in the same order, so that the gradient of the surrogate
equals, bit for bit, what ``elbo.loss_and_grads`` backpropagates:

- ``trace``, ``stl`` (:class:`~pyro.infer.Trace_ELBO` and subclasses): ``sum log p - sum log q``
  per particle, with the score-function term of non-reparameterised guide sites in the surrogate;
- ``meanfield`` (:class:`~pyro.infer.TraceMeanField_ELBO`): the analytic KL where torch's registry
  has it, else the sampled entropy term;
- ``iwae:K``, ``iwae-dreg:K`` (:class:`~pyro_vae.inference.objectives.IWAE_ELBO`): their
  ``differentiable_loss``, which is already item-free.

Other objectives (``enum``, ``em``, the ``jit-*`` ones, a user's own ELBO) have no entry here:
:func:`supports` is False and they train through their own ``loss_and_grads``.
"""

import torch
from pyro.distributions.util import is_identically_zero, scale_and_mask
from pyro.infer import JitTrace_ELBO, JitTraceMeanField_ELBO, Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.trace_elbo import _compute_log_r
from torch.distributions import kl_divergence

from .objectives import IWAE_ELBO


def supports(elbo):
    """Whether :func:`surrogate_loss` has ``elbo``'s objective (by class: Trace_ELBO and its
    subclasses other than the JIT ones, and IWAE_ELBO and its subclasses)."""
    if isinstance(elbo, (JitTrace_ELBO, JitTraceMeanField_ELBO)):
        return False
    return isinstance(elbo, (Trace_ELBO, IWAE_ELBO))


def surrogate_loss(elbo, model, guide, *args, **kwargs):
    """``(loss, surrogate)``: 0-d tensors whose value is ``elbo.loss_and_grads``'s loss and whose gradient
    is the one it backpropagates (both already divided by the number of particles).

    Example::

        >>> import pyro, pyro_vae as pv
        >>> vae = pv.VAE(pv.MLP(6, [8], 4), pv.MLP(2, [8], 6), z_dim=2)
        >>> x = torch.bernoulli(torch.full((5, 6), 0.4))
        >>> elbo = pv.make_elbo("meanfield")
        >>> pyro.set_rng_seed(0); loss, surrogate = surrogate_loss(elbo, vae.model, vae.guide, x)
        >>> pyro.set_rng_seed(0); loss.item() == elbo.loss(vae.model, vae.guide, x)
        True
    """
    if isinstance(elbo, IWAE_ELBO):
        loss = elbo.differentiable_loss(model, guide, *args, **kwargs)
        return loss.detach(), loss
    particle = _meanfield_particle if isinstance(elbo, TraceMeanField_ELBO) else _trace_particle
    loss, surrogate = 0.0, 0.0
    for model_trace, guide_trace in elbo._get_traces(model, guide, args, kwargs):
        loss_particle, surrogate_particle = particle(model_trace, guide_trace)
        loss = loss + loss_particle / elbo.num_particles
        surrogate = surrogate + surrogate_particle / elbo.num_particles
    return loss, surrogate


def _trace_particle(model_trace, guide_trace):
    """``Trace_ELBO._differentiable_loss_particle`` with the value kept as a detached tensor (float64:
    Pyro adds the sites' float32 sums as Python floats)."""
    elbo, surrogate, log_r = 0.0, 0.0, None
    for site in model_trace.nodes.values():
        if site["type"] == "sample":
            elbo = elbo + site["log_prob_sum"].detach().double()
            surrogate = surrogate + site["log_prob_sum"]
    for site in guide_trace.nodes.values():
        if site["type"] == "sample":
            _, score_function_term, entropy_term = site["score_parts"]
            elbo = elbo - site["log_prob_sum"].detach().double()
            if not is_identically_zero(entropy_term):
                surrogate = surrogate - entropy_term.sum()
            if not is_identically_zero(score_function_term):
                if log_r is None:
                    log_r = _compute_log_r(model_trace, guide_trace)
                summed = log_r.sum_to(site["cond_indep_stack"])
                surrogate = surrogate + (summed * score_function_term).sum()
    return -elbo, -surrogate


def _meanfield_particle(model_trace, guide_trace):
    """``TraceMeanField_ELBO._differentiable_loss_particle`` with the value kept as a detached tensor."""
    elbo = 0.0
    for name, model_site in model_trace.nodes.items():
        if model_site["type"] != "sample":
            continue
        if model_site["is_observed"]:
            elbo = elbo + model_site["log_prob_sum"]
            continue
        guide_site = guide_trace.nodes[name]
        try:
            kl_qp = kl_divergence(guide_site["fn"], model_site["fn"])
        except NotImplementedError:  # no closed form: sample it, as Pyro does
            elbo = elbo + model_site["log_prob_sum"] - guide_site["score_parts"].entropy_term.sum()
            continue
        kl_qp = scale_and_mask(kl_qp, scale=guide_site["scale"], mask=guide_site["mask"])
        if torch.is_tensor(kl_qp):
            elbo = elbo - kl_qp.sum()
        else:
            elbo = elbo - kl_qp * torch.Size(guide_site["fn"].batch_shape).numel()
    for name, guide_site in guide_trace.nodes.items():  # auxiliary guide sites
        if guide_site["type"] == "sample" and name not in model_trace.nodes:
            elbo = elbo - guide_site["score_parts"].entropy_term.sum()
    return -elbo.detach(), -elbo

"""Exact sums over a discrete latent: the ``enum`` objective and the exact ELBO terms.

For a model whose latent takes K values (``model.discrete_latent``, e.g. a mixture's component),

    log p(x)  = logsumexp_k log p(x, z = k)
    ELBO(q)   = sum_k q(k | x) [log p(x, z = k) - log q(k | x)]
              = sum_k q(k | x) log p(x | z = k)  -  KL(q(z | x) || p(z))
    log p(x) - ELBO(q) = KL(q(z | x) || p(z | x))       exactly, for every q

(Bishop 2006, eq. 9.70-9.72). :func:`enumerated_terms` computes them from the model's tables;
:class:`EnumELBO` is Pyro's ``TraceEnum_ELBO`` applied to the programs with every discrete site
configured for parallel enumeration, so SVI maximises that exact sum instead of a one-draw estimate.
"""

import torch
from pyro.infer import TraceEnum_ELBO, config_enumerate

from .elbo_registry import REGISTRY, pyro_elbo


@REGISTRY.register("enum", "TraceEnum_ELBO: discrete latents summed out exactly (mixture:K)", build=pyro_elbo)
class EnumELBO(TraceEnum_ELBO):
    """``TraceEnum_ELBO`` on ``config_enumerate(model)`` and ``config_enumerate(guide)``.

    Every site with enumerable support (a categorical z) is summed out, in the guide when the guide
    samples it (the exact expectation over q(z | x): no gradient variance) or in the model when it
    does not (the exact marginal likelihood). Continuous sites are drawn as by ``Trace_ELBO``, so on
    a VAE this is ``Trace_ELBO``. The programs themselves carry no enumeration flag, so ``trace``
    draws their discrete sites (score-function gradients) without Pyro's warning.

    Example::

        >>> import pyro_vae as pv
        >>> mix = pv.MixtureModel(4, pv.Bernoulli(), data_dim=16)
        >>> x = torch.bernoulli(torch.full((3, 16), 0.5))
        >>> loss = EnumELBO(max_plate_nesting=1).loss(mix.model, mix.guide, x)
        >>> abs(loss + mix.log_marginal(x).sum().item()) < 1e-3  # -log p(x): the exact guide's ELBO
        True
    """

    def loss(self, model, guide, *args, **kwargs):
        return super().loss(config_enumerate(model), config_enumerate(guide), *args, **kwargs)

    def loss_and_grads(self, model, guide, *args, **kwargs):
        return super().loss_and_grads(config_enumerate(model), config_enumerate(guide), *args, **kwargs)

    def differentiable_loss(self, model, guide, *args, **kwargs):
        return super().differentiable_loss(config_enumerate(model), config_enumerate(guide), *args, **kwargs)


def expectation(log_q, values):
    """``sum_k q_k values_k`` over the last dim, with ``0 * anything = 0`` where q_k = 0."""
    q = log_q.exp()
    return torch.where(q > 0, q * values, torch.zeros_like(values)).sum(-1)


def enumerated_elbo(log_joint, log_q):
    """``sum_k q_k [log p(x, k) - log q_k]``, ``(B,)``, from ``(B, K)`` tables."""
    return expectation(log_q, log_joint - log_q)


def enumerated_terms(model, x):
    """The exact ELBO of each row of ``x`` and its terms, summed over the latent's K values.

    :param model: a :class:`~pyro_vae.models.base.LatentModel` with ``discrete_latent``.
    :returns: dict of ``(B,)`` tensors: ``elbo``, ``reconstruction`` (E_q log p(x | z)), ``kl``
        (KL(q(z | x) || p(z))), ``penalty`` (0), and the exact ``log_likelihood`` log p(x).
    """
    log_prior = model.latent_log_prior()  # (K,)
    log_joint = model.log_joint_table(x)  # (B, K)
    log_q = model.guide_table(x)  # (B, K)
    reconstruction = expectation(log_q, log_joint - log_prior)
    kl = expectation(log_q, log_q - log_prior)
    return {"elbo": reconstruction - kl, "reconstruction": reconstruction, "kl": kl,
            "penalty": torch.zeros_like(kl), "log_likelihood": torch.logsumexp(log_joint, -1)}

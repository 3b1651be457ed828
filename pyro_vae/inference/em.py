"""Expectation-maximisation for a model with a discrete latent: the lecture's tight-ELBO baseline.

For q(z) any distribution over the K values of z,

    log p(x; theta) = ELBO(q, theta) + KL(q(z) || p(z | x; theta)).

E-step: q_t = p(z | x; theta_t) (exact, by Bayes' rule), so the KL is 0 and ELBO(q_t, theta_t) =
log p(x; theta_t): the bound is tight. M-step: theta_{t+1} = argmax_theta ELBO(q_t, theta), in closed
form for a mixture of an exponential-family likelihood (weighted means and variances, see
``Likelihood.m_step``). Hence log p(x; theta_{t+1}) >= ELBO(q_t, theta_{t+1}) >= log p(x; theta_t):
the log-likelihood never decreases (Dempster, Laird & Rubin 1977; Bishop 2006, sec. 9.4).

:class:`EM` is used like a Pyro ELBO (``loss``, ``loss_and_grads``), so ``fit`` trains with it: one
step is one EM iteration, and ``fit`` gives it every training row at once. It sets parameters in
place and leaves no gradients.
"""

import inspect

import torch

from ..errors import UserError
from .elbo_registry import REGISTRY


@torch.no_grad()
def em_step(model, x, smoothing=0.0):
    """One EM iteration on all rows of ``x``: E-step, then the model's closed-form M-step.

    :returns: ``(log_px, log_q)``: log p(x_n; theta_t) ``(N,)`` at the parameters before the update
        (= the ELBO after the E-step) and the E-step's log q(z = k | x_n) ``(N, K)``.
    """
    log_joint = model.log_joint_table(x)  # (N, K)
    log_px = torch.logsumexp(log_joint, -1)  # (N,)
    log_q = log_joint - log_px[:, None]  # log p(z = k | x_n)
    model.m_step(x, log_q.exp(), smoothing)
    return log_px, log_q


def _owner(program):
    """The :class:`~pyro_vae.models.base.LatentModel` whose bound ``model`` program this is."""
    owner = program.__self__ if inspect.ismethod(program) else None
    if owner is None or not owner.supports_em:
        raise UserError("em needs a model with a discrete latent, its exact posterior as guide and a likelihood "
                        "with a closed-form M-step (bernoulli, normal:SCALE, normal-hetero); pass model.model "
                        "of such a model, or use elbo='enum'", param="elbo")
    return owner


def _em(cls, pseudo, ctx):
    if ctx.num_particles != 1:
        raise UserError(f"em sums over the latent exactly; drop num_particles={ctx.num_particles}",
                        param="num_particles")
    return cls(pseudo)


@REGISTRY.register("em", "EM, closed-form E and M steps on all training rows (mixture:K); PSEUDO: pseudo-count of the "
                   "data mean per component (default 0)", arg="PSEUDO", default=0.0, attr="smoothing", example=1.0,
                   build=_em)
class EM:
    """EM as an objective: ``loss_and_grads(model.model, model.guide, x)`` runs one EM iteration on
    ``x`` and returns ``-sum_n log p(x_n)`` before it (the negative ELBO after the E-step), scaled
    by N / B with ``num_data`` like the ELBOs. On all N training rows (as ``fit`` calls it) the
    returned values never increase; on minibatches each step moves the parameters to that
    minibatch's optimum.

    :param float smoothing: pseudo-count of the data mean added to every component in the M-step
        (see :meth:`~pyro_vae.models.mixture.MixtureModel.m_step`); 0 is maximum likelihood.

    Example::

        >>> import pyro_vae as pv
        >>> mix = pv.MixtureModel(2, pv.Bernoulli(), data_dim=8)
        >>> x = torch.cat([torch.ones(5, 8), torch.zeros(5, 8)])
        >>> mix.init_from_data(x)
        >>> losses = [EM().loss_and_grads(mix.model, mix.guide, x) for _ in range(5)]
        >>> all(a >= b for a, b in zip(losses, losses[1:])), round(losses[-1], 2)  # two clusters: 10 log 2
        (True, 6.93)
    """

    num_particles = 1  # one pass over the rows per step, as a one-particle ELBO (for memory estimates)

    def __init__(self, smoothing=0.0):
        if smoothing < 0:
            raise UserError(f"smoothing must be 0 or a positive number, got {smoothing!r}", param="smoothing")
        self.smoothing = float(smoothing)

    def _scale(self, x, num_data):
        return 1.0 if num_data is None else num_data / x.shape[0]

    @torch.no_grad()
    def loss(self, model, guide, x, num_data=None, kl_scale=None):
        """``-(N / B) sum_n log p(x_n)`` at the current parameters (no update)."""
        return -self._scale(x, num_data) * torch.logsumexp(_owner(model).log_joint_table(x), -1).sum().item()

    def loss_and_grads(self, model, guide, x, num_data=None, kl_scale=None):
        if kl_scale is not None:
            raise UserError("em maximises log p(x) itself; drop beta and kl_warmup", param=("beta", "kl_warmup"))
        log_px, _ = em_step(_owner(model), x, self.smoothing)
        return -self._scale(x, num_data) * log_px.sum().item()


def is_closed_form(elbo):
    """Whether ``elbo`` updates parameters itself (EM) instead of through gradients."""
    return isinstance(elbo, EM)

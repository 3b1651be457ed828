"""What every latent-variable model here shares: :class:`LatentModel`, the ``"data"`` plate and the
KL weight.

A model is a pair of Pyro programs, ``model`` and ``guide``, that share site names: latent sites
(``"z"``, or ``"z1"``/``"z2"``), the observed ``"x"``, and the plate ``"data"`` over the minibatch
(dim -1). What callers may ask of a model is declared on :class:`LatentModel` with a default.
"""

import contextlib
import itertools

import pyro
import pyro.poutine as poutine
import torch
import torch.nn as nn

from ..families.posteriors import Posterior
from ..families.priors import Prior
from .nets import layer_multiply_adds, layer_width

_instance_ids = itertools.count()


def data_plate(x, num_data=None):
    """The ``"data"`` plate over the rows of ``x`` (dim -1).

    With ``num_data`` (the full training-set size N) the minibatch of B rows is a subsample of the
    plate, so every log-density inside is scaled by N / B and the minibatch ELBO is an unbiased
    estimate of the full-data ELBO. Without it the scale is 1: per-data-point, unscaled terms.
    """
    batch = x.shape[0]
    if num_data is None:
        return pyro.plate("data", batch, dim=-1)
    return pyro.plate("data", num_data, subsample=torch.arange(batch, device=x.device), dim=-1)


def latent_scale(kl_scale=None):
    """``poutine.scale(kl_scale)`` around latent sites (beta-VAE, KL warm-up), or nothing for None.

    Used in both model and guide, so the latent site's ``log p(z) - log q(z|x)`` (and the analytic
    KL that ``TraceMeanField_ELBO`` computes from the guide site's scale) is weighted by it while
    the likelihood term is not. ``poutine.scale`` rejects 0: warm-ups start at a small positive value.
    """
    return contextlib.nullcontext() if kl_scale is None else poutine.scale(scale=kl_scale)


class LatentModel(nn.Module):
    """What every model here shares: Pyro registration under a per-instance name, ``model`` and
    ``guide`` bound once, and the deterministic helpers through ``encoder``/``posterior`` (the layer
    next to the data) and ``decoder``/``likelihood``.

    Subclasses set their modules (``encoder``, ``decoder``, ``prior``, ``likelihood``,
    ``posterior``), then call :meth:`_bind_programs`. The class attributes and methods below
    declare what callers may ask of a model; subclasses override the ones that differ.
    """

    #: The guide samples its latent sites in the model's order (Pyro's mean-field condition), so a
    #: per-site analytic KL taken at the sampled parents is unbiased and ``meanfield`` may train it.
    mean_field_guide = True

    #: The model has q(z | x) for the latent its prior is over, as :meth:`posterior_at`
    #: (the VampPrior needs it).
    amortizes_prior_latent = False

    #: The latent takes finitely many values k = 1..K (a mixture's component), so log p(x) and the
    #: ELBO are exact sums over them (:meth:`log_joint_table`, :meth:`guide_table`,
    #: :meth:`latent_log_prior`) and the gap KL(q || p(z | x)) is known. Its code is E_q[one_hot(z)];
    #: it has no reparameterised draw (``meanfield`` and ``iwae:K`` cannot train it) and no
    #: continuous code for the representation report or the 2-d manifold.
    discrete_latent = False

    #: EM can fit the model: discrete latent, exact posterior as guide, closed-form M-step (:meth:`m_step`).
    supports_em = False

    #: The objective to train with when none is given (None: the command line's default).
    default_elbo = None

    #: What the bounds of :meth:`scored_programs` bound, as ``eval.json`` states it.
    bound_target = "log p(x)"

    #: The bounds are on a conditional density (log p(x | y), log p(x_hidden | x_visible)).
    conditional_bound = False

    #: The model draws images of a chosen class: ``sample(n, y=labels)`` (figures draw a row per class).
    samples_per_class = False

    #: The model has a classifier q(y | x): ``classify(x)`` and the pair ``joint_model``/``joint_guide``
    #: on rows ``[x, one_hot(y)]`` scoring log p(x, y) (the semi-supervised M2).
    classifies = False

    #: The model predicts hidden pixels from visible ones beside a deterministic baseline
    #: (``predict``, ``baseline_prediction``, ``baseline_log_likelihood``: the quadrant CVAE).
    predicts_hidden = False

    @property
    def point_mass(self):
        """The guide's code is a point mass: its posterior family declares no density (``Delta``).
        A user's own posterior module that does not derive from ``Posterior`` counts as a density."""
        return isinstance(self.posterior, Posterior) and not self.posterior.has_density

    @property
    def cheap_posterior_density(self):
        """q(z | x) scores a point it did not draw cheaply (see ``Posterior.cheap_density``); a user's
        own posterior module that does not derive from ``Posterior`` counts as cheap."""
        return not isinstance(self.posterior, Posterior) or self.posterior.cheap_density

    def prior_components(self):
        """The prior's Gaussian-mixture parts for figures (see ``Prior.components``), or None."""
        return self.prior.components() if isinstance(self.prior, Prior) else None

    def _bind_prior(self):
        """Let a prior built from the model's parts (the VampPrior) take them; a user's own prior
        module that does not derive from ``Prior`` needs nothing."""
        if isinstance(self.prior, Prior):
            self.prior.bind(self)

    def scored_programs(self):
        """The ``(model, guide)`` pair whose ELBO and importance-weighted bounds are reported (on
        :attr:`bound_target`): the training pair by default. A model trained with extra terms (the
        quadrant CVAE's baseline) or scored by another pair than it trains with (M2, whose label is
        summed inside each weight) overrides it."""
        return self.model, self.guide

    @property
    def corruption(self):
        """The noise ``x -> x~`` the guide applies to its input (a denoising autoencoder), or None."""
        return None

    def posterior_at(self, x):
        """q(z | x) of the latent the prior is over: batch ``(B,)``, event ``(Z,)``. Only for models
        with ``amortizes_prior_latent``."""
        raise NotImplementedError(f"{type(self).__name__} has no q(z | x) for its prior's latent")

    def log_joint_table(self, x):
        """``log p(x_n, z = k)`` for every value k of a discrete latent, ``(B, K)``; only for
        models with ``discrete_latent``."""
        raise NotImplementedError(f"{type(self).__name__} has no discrete latent to sum over")

    def guide_table(self, x):
        """``log q(z = k | x_n)``, ``(B, K)``; only for models with ``discrete_latent``."""
        raise NotImplementedError(f"{type(self).__name__} has no discrete latent to sum over")

    def latent_log_prior(self):
        """``log p(z = k)``, ``(K,)``; only for models with ``discrete_latent``."""
        raise NotImplementedError(f"{type(self).__name__} has no discrete latent to sum over")

    def m_step(self, x, responsibilities, smoothing=0.0):
        """EM's closed-form M-step given the E-step's ``responsibilities`` ``(N, K)``; only for
        models with ``supports_em``."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form M-step")

    def activation_width(self):
        """Values one draw of one data row leaves in the networks: every ``nn.Linear`` layer's outputs
        and every convolution's feature maps (:func:`~pyro_vae.models.nets.layer_width`). Memory
        estimates multiply it by the rows a step pushes; a model whose cost is not its layers (a
        mixture's table of components) overrides it."""
        return layer_width(self)

    def multiply_adds(self):
        """Multiply-adds of one draw of one data row through the model's networks, forward
        (:func:`~pyro_vae.models.nets.layer_multiply_adds`); the unit of the work estimates."""
        return layer_multiply_adds(self)

    def init_from_data(self, x):
        """Called once by the command line's builder with training rows ``x``: a model may start its
        parameters from data (a mixture's components at random rows). Default: nothing."""

    def grid_prior(self):
        """The distribution over the decoder's input whose marginal quantiles span the 2-d manifold's
        grid, or None when that input has no usable prior (a point-mass code; a latent whose prior
        is conditional on another, as in the two-layer VAE): figures then use the codes' quantiles."""
        return None

    def sample(self, num_samples):
        """Means of p(x | z) for z drawn from the generative model, ``(num_samples, D)``."""
        raise NotImplementedError

    def _bind_programs(self, prefix):
        self.pyro_name = f"{prefix}{next(_instance_ids)}"
        # Bind once: JIT ELBOs cache their compiled graph under id(model) and id(guide), and every
        # attribute access would otherwise make a new bound method, so they recompiled every step.
        self.model, self.guide = self.model, self.guide

    def _register(self, *parts):
        for part in parts:
            pyro.module(f"{self.pyro_name}.{part}", getattr(self, part))

    @torch.no_grad()
    def encode(self, x):
        """Posterior mean of the layer next to the data, E_q[z | x], ``(B, Z)``."""
        return self.posterior.mean(self.encoder(x))

    @torch.no_grad()
    def decode(self, z):
        """Mean of p(x | z), ``(..., D)``."""
        return self.likelihood.mean(self.decoder(z))

    @torch.no_grad()
    def reconstruct(self, x):
        """Mean of p(x | z = E_q[z | x]), ``(B, D)``."""
        return self.decode(self.encode(x))

"""Latent-variable models as pairs of Pyro programs, ``model`` and ``guide``, that share site names.

Sites: latent ``"z"``, observed ``"x"``, and the plate ``"data"`` over the minibatch (dim -1).
"""

import contextlib
import itertools

import pyro
import pyro.poutine as poutine
import torch
import torch.nn as nn

from .likelihoods import Bernoulli
from .posteriors import DiagonalNormal
from .priors import StandardNormal

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

    Subclasses set their modules, then call :meth:`_bind_programs`.
    """

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


class VAE(LatentModel):
    """Variational autoencoder (Kingma & Welling 2014; Rezende et al. 2014).

    :param nn.Module encoder: ``x (B, D) -> (B, posterior.num_params(z_dim))``.
    :param nn.Module decoder: ``z (..., B, Z) -> (..., B, likelihood.num_params(D))``.
    :param prior: p(z), e.g. :class:`~pyro_vae.priors.StandardNormal`; defines ``z_dim``.
    :param likelihood: p(x|z) family, e.g. :class:`~pyro_vae.likelihoods.Bernoulli`.
    :param posterior: q(z|x) family, e.g. :class:`~pyro_vae.posteriors.DiagonalNormal`.

    Parameters are registered with Pyro under a name unique to this instance, so several VAEs can
    live in one param store and ``pyro.infer.SVI`` with ``pyro.optim`` trains the right tensors.
    """

    def __init__(self, encoder, decoder, prior=None, likelihood=None, posterior=None, z_dim=None):
        super().__init__()
        if prior is None:
            if z_dim is None:
                raise ValueError("VAE needs a prior or z_dim")
            prior = StandardNormal(z_dim)
        self.encoder, self.decoder = encoder, decoder
        self.prior = prior
        self.likelihood = likelihood if likelihood is not None else Bernoulli()
        self.posterior = posterior if posterior is not None else DiagonalNormal()
        if hasattr(self.prior, "bind"):  # a prior built from the model's parts (e.g. the VampPrior)
            self.prior.bind(self)
        self._bind_programs("vae")

    @property
    def z_dim(self):
        return self.prior.z_dim

    def model(self, x, num_data=None, kl_scale=None):
        """Generative story, for each data point n in the plate ``"data"``::

            z_n ~ p(z)                                  "z": (B, Z)   [(P, B, Z) with P particles]
            x_n ~ p(x | z_n) = likelihood(decoder(z_n))  "x": (B, D)   observed

        :param x: ``(B, D)`` minibatch. :param num_data: full data-set size N (scales by N / B).
        :param kl_scale: weight of the latent site in model and guide (beta-VAE, warm-up); None: 1.
        """
        self._register("decoder", "prior", "likelihood")
        with data_plate(x, num_data):
            with latent_scale(kl_scale):
                z = pyro.sample("z", self.prior())  # (B, Z)
            out = self.decoder(z)  # (B, D_out)
            pyro.sample("x", self.likelihood(out, event_dim=x.dim() - 1), obs=x)
            self.penalties(x)

    def penalties(self, x):
        """Extra log-density terms per data point (``pyro.factor`` sites inside the ``"data"`` plate);
        none for a VAE. Subclasses override it (e.g. the contractive autoencoder)."""

    def guide(self, x, num_data=None, kl_scale=None):
        """Amortised posterior, for each data point n::

            z_n ~ q(z | x_n) = posterior(encoder(x_n))   "z": (B, Z)
        """
        self._register("encoder", "posterior")
        with data_plate(x, num_data), latent_scale(kl_scale):
            pyro.sample("z", self.posterior_at(x))  # (B, Z)

    def posterior_at(self, x):
        """q(z | x) as a distribution: batch ``(B,)``, event ``(Z,)``."""
        return self.posterior(self.encoder(x))

    @torch.no_grad()
    def sample(self, num_samples):
        """Means of p(x | z) for z ~ p(z), ``(num_samples, D)``."""
        return self.decode(self.prior().sample((num_samples,)))

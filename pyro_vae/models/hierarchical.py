"""A VAE with two stochastic layers (Burda et al. 2016, section 5: the "two stochastic layers" model).

Generative story (top-down), for each data point in the plate ``"data"``::

    z1 ~ p(z1)                                   "z1": (B, Z1)   the prior family (normal, mog:K)
    z2 ~ N(mu(z1), diag sigma(z1)^2)             "z2": (B, Z2)   a learned conditional Gaussian
    x  ~ p(x | z2)                               "x":  (B, D)    the likelihood family

Recognition model (bottom-up, as the paper's)::

    z2 ~ q(z2 | x)                               the posterior family (diag, lowrank, full, iaf, delta)
    z1 ~ N(m(z2), diag s(z2)^2)                  a learned conditional Gaussian

The guide samples z2 before z1 while the model samples z1 before z2, so the guide is not
mean-field in Pyro's sense (``mean_field_guide = False``): a per-site analytic KL would pair
q(z2 | x) with p(z2 | z1) at a z1 drawn from q(z1 | z2), which biases it. Train it with ``trace``,
``jit-trace`` or ``iwae:K``; :func:`~pyro_vae.inference.traces.elbo_terms` samples both KL terms for it.
"""

import pyro
import torch

from ..errors import check_int
from ..families.posteriors import DiagonalNormal
from .base import LatentModel, data_plate, latent_scale


class HierarchicalVAE(LatentModel):
    """Two-stochastic-layer VAE, z1 -> z2 -> x; model and guide below.

    :param nn.Module encoder: ``x (B, D) -> (B, posterior.num_params(Z2))``, for q(z2 | x).
    :param nn.Module decoder: ``z2 (..., Z2) -> (..., likelihood.num_params(D))``, for p(x | z2).
    :param nn.Module top_encoder: ``z2 (..., Z2) -> (..., 2 Z1)``, for q(z1 | z2) (diagonal Normal).
    :param nn.Module top_decoder: ``z1 (..., Z1) -> (..., 2 Z2)``, for p(z2 | z1) (diagonal Normal).
    :param prior: p(z1), with ``z_dim == Z1`` (the VampPrior is refused by its ``bind``: it needs
        q(z1 | x), which this guide does not have in closed form).
    :param likelihood: p(x | z2) family.
    :param posterior: q(z2 | x) family.
    :param int z_dim: Z2, the size of the layer next to the data (Z1 is ``prior.z_dim``).
    """

    mean_field_guide = False  # the guide samples z2 then z1, the model z1 then z2
    # amortizes_prior_latent stays False: q(z1 | x) is not available in closed form
    # grid_prior stays None: p(z2) is conditional on z1, so the manifold uses the codes' quantiles

    def __init__(self, encoder, decoder, top_encoder, top_decoder, prior, likelihood, posterior, z_dim):
        super().__init__()
        self.z_dim = check_int("z_dim", z_dim)  # Z2
        self.encoder, self.decoder = encoder, decoder
        self.top_encoder, self.top_decoder = top_encoder, top_decoder
        self.prior, self.likelihood, self.posterior = prior, likelihood, posterior
        self.conditional = DiagonalNormal()  # family of p(z2 | z1) and q(z1 | z2)
        self._bind_prior()  # the VampPrior refuses this model: it has no q(z1 | x)
        self._bind_programs("hvae")

    def model(self, x, num_data=None, kl_scale=None):
        """z1 ~ p(z1); z2 ~ p(z2 | z1); x ~ p(x | z2) (observed), per data point.

        :param kl_scale: weight of both latent sites in model and guide (beta, warm-up); None: 1.
        """
        self._register("top_decoder", "decoder", "prior", "likelihood")
        with data_plate(x, num_data):
            with latent_scale(kl_scale):
                z1 = pyro.sample("z1", self.prior())  # (B, Z1)
                z2 = pyro.sample("z2", self.conditional(self.top_decoder(z1)))  # (B, Z2)
            pyro.sample("x", self.likelihood(self.decoder(z2), event_dim=x.dim() - 1), obs=x)

    def guide(self, x, num_data=None, kl_scale=None):
        """z2 ~ q(z2 | x); z1 ~ q(z1 | z2), per data point."""
        self._register("encoder", "top_encoder", "posterior")
        with data_plate(x, num_data), latent_scale(kl_scale):
            z2 = pyro.sample("z2", self.posterior(self.encoder(x)))  # (B, Z2)
            pyro.sample("z1", self.conditional(self.top_encoder(z2)))  # (B, Z1)

    # encode, decode, reconstruct (through z2, the layer next to the data) come from LatentModel

    @torch.no_grad()
    def sample(self, num_samples):
        """Means of p(x | z2) for z1 ~ p(z1), z2 ~ p(z2 | z1): ``(num_samples, D)``."""
        z1 = self.prior().sample((num_samples,))
        z2 = self.conditional(self.top_decoder(z1)).sample()
        return self.decode(z2)

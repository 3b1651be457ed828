"""The variational autoencoder as a pair of Pyro programs (Kingma & Welling 2014; Rezende et al. 2014)."""

import pyro
import torch

from ..errors import UserError
from ..families.likelihoods import Bernoulli
from ..families.posteriors import DiagonalNormal
from ..families.priors import StandardNormal
from .base import LatentModel, data_plate, latent_scale


class VAE(LatentModel):
    """Variational autoencoder (Kingma & Welling 2014; Rezende et al. 2014).

    :param nn.Module encoder: ``x (B, D) -> (B, posterior.num_params(z_dim))``.
    :param nn.Module decoder: ``z (..., B, Z) -> (..., B, likelihood.num_params(D))``.
    :param prior: p(z), e.g. :class:`~pyro_vae.families.priors.StandardNormal`; defines ``z_dim``.
    :param likelihood: p(x|z) family, e.g. :class:`~pyro_vae.families.likelihoods.Bernoulli`.
    :param posterior: q(z|x) family, e.g. :class:`~pyro_vae.families.posteriors.DiagonalNormal`.

    Parameters are registered with Pyro under a name unique to this instance, so several VAEs can
    live in one param store and ``pyro.infer.SVI`` with ``pyro.optim`` trains the right tensors.

    Example::

        >>> import pyro_vae as pv
        >>> lik, post = pv.Bernoulli(), pv.DiagonalNormal()
        >>> vae = pv.VAE(pv.MLP(64, [32], post.num_params(2)), pv.MLP(2, [32], lik.num_params(64)),
        ...              prior=pv.StandardNormal(2), likelihood=lik, posterior=post)
        >>> x = torch.bernoulli(torch.full((5, 64), 0.3))
        >>> trace = pyro.poutine.trace(vae.model).get_trace(x)
        >>> trace.nodes["z"]["value"].shape, trace.nodes["x"]["value"].shape
        (torch.Size([5, 2]), torch.Size([5, 64]))
        >>> loss = pyro.infer.Trace_ELBO().loss(vae.model, vae.guide, x)  # -ELBO, summed over the 5 points
    """

    amortizes_prior_latent = True

    def __init__(self, encoder, decoder, prior=None, likelihood=None, posterior=None, z_dim=None):
        super().__init__()
        if prior is None:
            if z_dim is None:
                raise UserError("VAE needs a prior or z_dim", param=("prior", "z_dim"))
            prior = StandardNormal(z_dim)
        self.encoder, self.decoder = encoder, decoder
        self.prior = prior
        self.likelihood = likelihood if likelihood is not None else Bernoulli()
        self.posterior = posterior if posterior is not None else DiagonalNormal()
        self._bind_prior()  # a prior built from the model's parts (the VampPrior) takes them here
        self._bind_programs("vae")

    @property
    def z_dim(self):
        return self.prior.z_dim

    def model(self, x, num_data=None, kl_scale=None):
        """Generative story, for each data point n in the plate ``"data"``::

            z_n ~ p(z)                                  "z": (B, Z)   [(P, B, Z) with P particles]
            x_n ~ p(x | z_n) = likelihood(decoder(z_n))  "x": (B, D)   observed

        :param x: ``(B, D)`` minibatch.
        :param num_data: full data-set size N (scales by N / B).
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

    def grid_prior(self):
        """p(z), whose quantiles span the manifold's grid; None for a point-mass code (an autoencoder)."""
        return None if self.point_mass else self.prior()

    @torch.no_grad()
    def sample(self, num_samples):
        """Means of p(x | z) for z ~ p(z), ``(num_samples, D)``."""
        return self.decode(self.prior().sample((num_samples,)))

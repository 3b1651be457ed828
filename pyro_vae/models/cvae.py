"""The class-conditional VAE: a label y chooses the class, a code z the style (Kingma et al. 2014's
conditional generative model; Sohn, Lee & Yan 2015).

Generative story, for each data point n in the plate ``"data"``, given its label y_n::

    z_n ~ p(z)                                                    "z": (B, Z)
    x_n ~ p(x | y_n, z_n) = likelihood(decoder(z_n, one_hot(y_n)))    "x": (B, D)   observed

Inference model::

    z_n ~ q(z | x_n, y_n) = posterior(encoder(x_n, one_hot(y_n)))

The ELBO and the importance-weighted bounds of these programs bound log p(x | y), the likelihood of an
image given its class. Both programs read rows ``[x, one_hot(y)]`` ``(B, D + C)``, as the labelled view
of a data set serves them (:func:`~pyro_vae.labels.with_label_columns`): every routine that slices
rows (``fit``'s minibatches, the bounds, k-hat, AIS) then carries each label with its image.
"""

import pyro
import torch

from ..errors import check_int
from ..families.likelihoods import Bernoulli
from ..families.posteriors import DiagonalNormal
from ..families.priors import StandardNormal
from ..labels import one_hot, pack, unpack
from .base import LatentModel, data_plate, latent_scale


class ConditionalVAE(LatentModel):
    """p(z) p(x | y, z) with q(z | x, y); the label one-hot into both networks.

    :param nn.Module encoder: ``(x (..., D), one_hot(y) (..., C)) -> (..., posterior.num_params(Z))``,
        e.g. :class:`~pyro_vae.models.nets.ConditionalMLP`.
    :param nn.Module decoder: ``(z (..., Z), one_hot(y) (..., C)) -> (..., likelihood.num_params(D))``.
    :param int num_classes: C.
    :param prior: p(z) (default standard normal of ``z_dim``); not the VampPrior, which needs q(z | x).
    :param likelihood: p(x | y, z) family (default Bernoulli).
    :param posterior: q(z | x, y) family (default diagonal normal).
    :param int z_dim: Z when no prior is given.

    Example::

        >>> import pyro_vae as pv
        >>> lik, post = pv.Bernoulli(), pv.DiagonalNormal()
        >>> cvae = pv.ConditionalVAE(pv.ConditionalMLP(64, 10, [32], post.num_params(2)),
        ...                          pv.ConditionalMLP(2, 10, [32], lik.num_params(64)), num_classes=10, z_dim=2)
        >>> rows = pv.labels.pack(torch.bernoulli(torch.full((5, 64), 0.3)), torch.arange(5), 10)  # (5, 74)
        >>> pv.iwae(cvae.model, cvae.guide, rows, num_samples=100).shape  # bounds on log p(x | y)
        torch.Size([5])
        >>> cvae.sample(3, y=torch.tensor([7, 7, 7])).shape  # three sevens
        torch.Size([3, 64])
    """

    bound_target = "log p(x | y)"  # the programs score x given its label
    conditional_bound = True
    samples_per_class = True

    def __init__(self, encoder, decoder, num_classes, prior=None, likelihood=None, posterior=None, z_dim=None):
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes)
        self.encoder, self.decoder = encoder, decoder
        self.prior = prior if prior is not None else StandardNormal(check_int("z_dim", z_dim))
        self.likelihood = likelihood if likelihood is not None else Bernoulli()
        self.posterior = posterior if posterior is not None else DiagonalNormal()
        self._bind_prior()  # the VampPrior refuses: it needs q(z | x) without a label
        self._bind_programs("cvae")

    @property
    def z_dim(self):
        return self.prior.z_dim

    def model(self, rows, num_data=None, kl_scale=None):
        """z ~ p(z); x ~ p(x | y, z) (observed), per row ``[x, one_hot(y)]``.

        :param rows: ``(B, D + C)``.
        :param num_data: full data-set size N (scales by N / B).
        :param kl_scale: weight of the latent site in model and guide (beta, warm-up); None: 1.
        """
        self._register("decoder", "prior", "likelihood")
        x, code = unpack(rows, self.num_classes)  # (B, D), (B, C)
        with data_plate(rows, num_data):
            with latent_scale(kl_scale):
                z = pyro.sample("z", self.prior())  # (B, Z)
            pyro.sample("x", self.likelihood(self.decoder(z, code), event_dim=1), obs=x)  # (B, D)

    def guide(self, rows, num_data=None, kl_scale=None):
        """z ~ q(z | x, y), per row ``[x, one_hot(y)]``."""
        self._register("encoder", "posterior")
        with data_plate(rows, num_data), latent_scale(kl_scale):
            pyro.sample("z", self.posterior_at(rows))  # (B, Z)

    def posterior_at(self, rows):
        """q(z | x, y) of rows ``[x, one_hot(y)]``: batch ``(B,)``, event ``(Z,)``."""
        x, code = unpack(rows, self.num_classes)
        return self.posterior(self.encoder(x, code))

    def grid_prior(self):
        return self.prior()

    def _code(self, y, like):
        return one_hot(y, self.num_classes, like.dtype).to(like.device)

    @torch.no_grad()
    def encode(self, rows):
        """E_q[z | x, y], ``(B, Z)``."""
        x, code = unpack(rows, self.num_classes)
        return self.posterior.mean(self.encoder(x, code))

    @torch.no_grad()
    def decode(self, z, y=None):
        """Mean of p(x | y, z), ``(..., D)``, for labels ``y`` ``(...)`` (default: class 0)."""
        y = torch.zeros(z.shape[:-1], dtype=torch.long, device=z.device) if y is None else y
        return self.likelihood.mean(self.decoder(z, self._code(y, z)))

    @torch.no_grad()
    def reconstruct(self, rows):
        """Mean of p(x | y, z = E_q[z | x, y]), ``(B, D)``."""
        return self.likelihood.mean(self.decoder(self.encode(rows), unpack(rows, self.num_classes)[1]))

    @torch.no_grad()
    def sample(self, num_samples, y=None):
        """Means of p(x | y, z), z ~ p(z), for labels ``y`` ``(num_samples,)`` (default: classes in turn)."""
        z = self.prior().sample((num_samples,))
        y = torch.arange(num_samples, device=z.device) % self.num_classes if y is None else y
        return self.decode(z, y)

    def rows(self, x, y):
        """The programs' input ``[x, one_hot(y)]`` ``(B, D + C)`` of images ``(B, D)`` and labels ``(B,)``."""
        return pack(x, y, self.num_classes)

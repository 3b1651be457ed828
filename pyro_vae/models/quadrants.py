"""Structured output prediction (Sohn, Lee & Yan 2015; Pyro's ``cvae`` example): from the visible
quadrants of an image, predict the hidden ones, with a conditional VAE beside a deterministic network.

With Q = 1, 2, 3 visible quadrants (as the example: the bottom-left one; the left half; all but the
bottom-right one), write x_v for the visible pixels and x_h for the hidden ones. The conditional
VAE's generative story, for each image n in the plate ``"data"``::

    z_n ~ p(z | x_v,n) = posterior(prior_net(x_v,n))                     "z": (B, Z)   the prior network
    x_h,n ~ p(x_h | x_v,n, z_n) = likelihood(decoder(z_n, x_v,n))          "x": (B, D_h) observed

and its recognition model, which sees the whole image::

    z_n ~ q(z | x_v,n, x_h,n) = posterior(encoder(x_n))

Its ELBO and importance-weighted bounds are on log p(x_h | x_v): the same L_K curve, k-hat and AIS as
any model, with the recognition network as proposal. The baseline is a deterministic network
``x_v -> x_h`` scored by the same likelihood family, whose masked cross-entropy is
-log p_baseline(x_h | x_v) exactly (no latent). Both are trained together, on the same minibatches
with the same optimiser (their parameters are disjoint, so neither affects the other):
:meth:`QuadrantCVAE.model` holds the baseline's observed site ``"baseline"`` beside the CVAE's, and
:meth:`QuadrantCVAE.scored_programs` gives the CVAE alone for its bounds.

Every network reads ``x[..., visible]`` (an index, not a multiplication by a mask), so a hidden
pixel cannot reach the prior network, the decoder or the baseline, whatever its value.
"""

import pyro
import torch
import torch.nn as nn

from ..errors import UserError, check_int
from ..families.likelihoods import Bernoulli
from ..families.posteriors import DiagonalNormal
from .base import LatentModel, data_plate, latent_scale

QUADRANT_CHOICES = (1, 2, 3)


def visible_mask(image_shape, num_visible):
    """``(H W,)`` bool, True where a pixel is visible with ``num_visible`` quadrants, as Pyro's example:
    1 the bottom-left quadrant; 2 the left half; 3 all but the bottom-right quadrant.

    :raises UserError: naming ``num_visible`` outside 1..3, or ``image_shape`` when the images are not square.

    Example::

        >>> visible_mask((4, 4), 3).reshape(4, 4).int().tolist()
        [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]]
    """
    if num_visible not in QUADRANT_CHOICES:
        raise UserError(f"num_visible must be 1, 2 or 3 visible quadrants, got {num_visible!r}", param="num_visible")
    shape = tuple(int(n) for n in image_shape)
    if len(shape) != 2 or shape[0] != shape[1] or shape[0] < 2:
        raise UserError(f"quadrants need square grey images (H, W) with H = W >= 2, got image shape {shape}",
                        param="image_shape")
    h, w = shape
    mask = torch.zeros(h, w, dtype=torch.bool, device="cpu")  # cpu: index arithmetic, also under a meta device
    mask[h // 2 :, : w // 2] = True
    if num_visible >= 2:
        mask[:, : w // 2] = True
    if num_visible == 3:
        mask[: h // 2, :] = True
    return mask.flatten()


class QuadrantSplit(nn.Module):
    """The visible and hidden pixels of flat images: ``visible(x) (..., D_v)``, ``hidden(x) (..., D_h)``."""

    def __init__(self, image_shape, num_visible):
        super().__init__()
        mask = visible_mask(image_shape, num_visible)
        self.image_shape, self.num_visible = tuple(image_shape), num_visible
        self.register_buffer("visible_index", torch.nonzero(mask).flatten(), persistent=False)
        self.register_buffer("hidden_index", torch.nonzero(~mask).flatten(), persistent=False)

    @property
    def visible_dim(self):
        return self.visible_index.numel()

    @property
    def hidden_dim(self):
        return self.hidden_index.numel()

    def visible(self, x):
        return x[..., self.visible_index]

    def hidden(self, x):
        return x[..., self.hidden_index]

    def assemble(self, visible, hidden):
        """Whole images ``(..., H W)`` from visible ``(..., D_v)`` and hidden ``(..., D_h)`` pixels."""
        lead = torch.broadcast_shapes(visible.shape[:-1], hidden.shape[:-1])
        out = hidden.new_zeros(*lead, self.visible_dim + self.hidden_dim)
        out[..., self.visible_index] = visible.expand(*lead, -1)
        out[..., self.hidden_index] = hidden.expand(*lead, -1)
        return out


class QuadrantCVAE(LatentModel):
    """Conditional VAE for x_h given x_v, with a conditional prior network, and the baseline network.

    :param split: a :class:`QuadrantSplit` (which pixels are visible).
    :param nn.Module prior_net: ``x_v (..., D_v) -> (..., posterior.num_params(Z))``, for p(z | x_v).
    :param nn.Module encoder: ``x (..., D) -> (..., posterior.num_params(Z))``, for q(z | x_v, x_h).
    :param nn.Module decoder: ``(z (..., Z), x_v (..., D_v)) -> (..., likelihood.num_params(D_h))``, e.g.
        :class:`~pyro_vae.models.nets.ConditionalMLP`.
    :param nn.Module baseline: ``x_v (..., D_v) -> (..., likelihood.num_params(D_h))``, the deterministic net.
    :param int z_dim: Z.
    :param likelihood: p(x_h | ...) family of both (default Bernoulli).
    :param posterior: the family of p(z | x_v) and of q(z | x) (default diagonal normal).

    Example::

        >>> import pyro_vae as pv
        >>> from pyro_vae.models.quadrants import QuadrantCVAE, QuadrantSplit
        >>> split = QuadrantSplit((8, 8), num_visible=2)  # the left half visible: D_v = D_h = 32
        >>> m = QuadrantCVAE(split, pv.MLP(32, [16], 4), pv.MLP(64, [16], 4), pv.ConditionalMLP(2, 32, [16], 32),
        ...                  pv.MLP(32, [16], 32), z_dim=2)
        >>> x = torch.bernoulli(torch.full((5, 64), 0.3))
        >>> pv.iwae(*m.scored_programs(), x, num_samples=50).shape  # bounds on log p(x_h | x_v)
        torch.Size([5])
        >>> m.baseline_log_likelihood(x).shape, m.predict(x, num_samples=3).shape  # -cross-entropy; samples
        (torch.Size([5]), torch.Size([3, 5, 64]))
    """

    bound_target = "log p(x_hidden | x_visible)"
    conditional_bound = True
    predicts_hidden = True

    def __init__(self, split, prior_net, encoder, decoder, baseline, z_dim, likelihood=None, posterior=None):
        super().__init__()
        self.split = split
        self.z_dim = check_int("z_dim", z_dim)
        self.prior_net, self.encoder, self.decoder, self.baseline = prior_net, encoder, decoder, baseline
        self.likelihood = likelihood if likelihood is not None else Bernoulli()
        self.posterior = posterior if posterior is not None else DiagonalNormal()
        self.prior = None  # the prior p(z | x_v) is a network: conditional on the data
        self._bind_programs("quadrants")
        self.cvae_model, self.cvae_guide = self.cvae_model, self.cvae_guide

    def cvae_model(self, x, num_data=None, kl_scale=None):
        """z ~ p(z | x_v); x_h ~ p(x_h | x_v, z) (observed), per image ``x`` ``(B, D)``.

        :param num_data: full data-set size N (scales by N / B).
        :param kl_scale: weight of the latent site in model and guide; None: 1.
        """
        self._register("prior_net", "decoder", "likelihood")
        with data_plate(x, num_data):
            self._cvae_sites(x, kl_scale)

    def _cvae_sites(self, x, kl_scale):
        visible, hidden = self.split.visible(x), self.split.hidden(x)  # (B, D_v), (B, D_h)
        with latent_scale(kl_scale):
            z = pyro.sample("z", self.prior_at(visible))  # (B, Z)
        pyro.sample("x", self.likelihood(self.decoder(z, visible), event_dim=1), obs=hidden)  # (B, D_h)

    def cvae_guide(self, x, num_data=None, kl_scale=None):
        """z ~ q(z | x_v, x_h), the recognition network on the whole image."""
        self._register("encoder", "posterior")
        with data_plate(x, num_data), latent_scale(kl_scale):
            pyro.sample("z", self.posterior(self.encoder(x)))  # (B, Z)

    def model(self, x, num_data=None, kl_scale=None):
        """The training program: :meth:`cvae_model`, and the baseline's x_h ~ p_baseline(x_h | x_v)
        (site ``"baseline"``, observed), so one objective trains both on the same minibatches."""
        self._register("prior_net", "decoder", "likelihood", "baseline")
        with data_plate(x, num_data):
            self._cvae_sites(x, kl_scale)
            pyro.sample("baseline", self.likelihood(self.baseline(self.split.visible(x)), event_dim=1),
                        obs=self.split.hidden(x))  # (B, D_h)

    def guide(self, x, num_data=None, kl_scale=None):
        """:meth:`cvae_guide` (the baseline has no latent)."""
        self.cvae_guide(x, num_data, kl_scale)

    def scored_programs(self):
        """The CVAE alone: its ELBO and bounds are on log p(x_h | x_v)."""
        return self.cvae_model, self.cvae_guide

    def prior_at(self, visible):
        """p(z | x_v): batch ``(B,)``, event ``(Z,)``."""
        return self.posterior(self.prior_net(visible))

    @torch.no_grad()
    def baseline_log_likelihood(self, x):
        """log p_baseline(x_h | x_v) = -(masked cross-entropy) of each image, ``(B,)``."""
        return self.likelihood(self.baseline(self.split.visible(x)), event_dim=1).log_prob(self.split.hidden(x))

    @torch.no_grad()
    def baseline_prediction(self, x):
        """Whole images: the visible pixels, and the baseline's mean for the hidden ones, ``(B, D)``."""
        visible = self.split.visible(x)
        return self.split.assemble(visible, self.likelihood.mean(self.baseline(visible)))

    @torch.no_grad()
    def predict(self, x, num_samples=1):
        """Whole images ``(num_samples, B, D)``: the visible pixels, and the mean of p(x_h | x_v, z) for
        z ~ p(z | x_v) in the hidden ones (one z per sample)."""
        visible = self.split.visible(x)
        z = self.prior_at(visible).sample((num_samples,))  # (S, B, Z)
        return self.split.assemble(visible, self.likelihood.mean(self.decoder(z, visible)))

    @torch.no_grad()
    def encode(self, x):
        """E_q[z | x], ``(B, Z)``."""
        return self.posterior.mean(self.encoder(x))

    @torch.no_grad()
    def reconstruct(self, x):
        """Whole images with the hidden pixels from z = E_q[z | x], ``(B, D)``."""
        visible = self.split.visible(x)
        return self.split.assemble(visible, self.likelihood.mean(self.decoder(self.encode(x), visible)))

    @torch.no_grad()
    def sample(self, num_samples):
        raise NotImplementedError("a quadrant CVAE predicts x_h from x_v: use predict(x)")


"""Corruption noises C(x~ | x) for the denoising autoencoder: modules ``x -> x~``.

The guide of a denoising autoencoder encodes a corrupted x~ while the model scores the clean x
(Vincent et al. 2008). Each noise is a module with a ``spec()`` that names it as the command
line does (``masking:0.3``), so reports can say which corruption they used.
"""

import torch
import torch.nn as nn

from ..errors import check_positive, check_probability
from ..specs import Registry

REGISTRY = Registry("noise")  # spec names of the corruption noises, registered by @REGISTRY.register


class Noise(nn.Module):
    """Base class: ``forward(x)`` returns a corrupted copy of ``x``, same shape."""

    def spec(self):
        """The noise as the ``name:arg`` spec that builds it (``masking:0.3``)."""
        return REGISTRY.spec_of(self) or type(self).__name__


@REGISTRY.register("masking", "set each input to 0 with probability NU", arg="NU", attr="nu", example=0.3,
                   build=lambda cls, nu, ctx: cls(check_probability("masking:NU", nu)))
class Masking(Noise):
    """Masking noise: each input is set to 0 independently with probability ``nu``.

    Example::

        >>> x = torch.ones(1000, 100)
        >>> round(1 - Masking(0.3)(x).mean().item(), 1)
        0.3
    """

    def __init__(self, nu):
        super().__init__()
        self.nu = check_probability("nu", nu)

    def forward(self, x):
        return x * (torch.rand_like(x) >= self.nu)


@REGISTRY.register("gaussian", "add N(0, SIGMA^2) noise to each input", arg="SIGMA", attr="sigma", example=0.5)
class GaussianNoise(Noise):
    """Additive isotropic Gaussian noise of standard deviation ``sigma``.

    Example::

        >>> x = torch.zeros(1000, 100)
        >>> round(GaussianNoise(0.5)(x).std().item(), 1)
        0.5
    """

    def __init__(self, sigma):
        super().__init__()
        self.sigma = check_positive("sigma", sigma)

    def forward(self, x):
        return x + self.sigma * torch.randn_like(x)


"""Corruption noises C(x~ | x) for the denoising autoencoder: modules ``x -> x~``.

The guide of a denoising autoencoder encodes a corrupted x~ while the model scores the clean x
(Vincent et al. 2008). Each noise is a module with a ``spec()`` that names it as the command
line does (``masking:0.3``), so reports can say which corruption they used.
"""

import torch
import torch.nn as nn

from ..errors import check_positive, check_probability
from ..specs import Choice, number_arg


class Noise(nn.Module):
    """Base class: ``forward(x)`` returns a corrupted copy of ``x``, same shape."""

    def spec(self):
        """The noise as a ``name:arg`` spec."""
        raise NotImplementedError


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

    def spec(self):
        return f"masking:{self.nu:g}"


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

    def spec(self):
        return f"gaussian:{self.sigma:g}"


def _masking(arg, ctx):
    nu = number_arg("masking:NU", arg)
    check_probability("masking:NU", nu)
    return Masking(nu)


REGISTRY = {
    "masking": Choice("masking:NU", "set each input to 0 with probability NU", _masking),
    "gaussian": Choice("gaussian:SIGMA", "add N(0, SIGMA^2) noise to each input",
                       lambda arg, ctx: GaussianNoise(number_arg("gaussian:SIGMA", arg))),
}

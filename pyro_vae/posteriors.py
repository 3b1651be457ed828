"""Posterior families q(z|x): map an encoder's output to a distribution over z.

Each family says how many encoder outputs it reads (``num_params(z_dim)``) and turns an output of
shape ``(B, num_params)`` into a distribution with batch shape ``(B,)`` and event shape ``(z_dim,)``.
"""

import pyro.distributions as dist
import torch.nn as nn
import torch.nn.functional as F

from .specs import Choice, no_arg


class DiagonalNormal(nn.Module):
    """q(z|x) = N(z; mu(x), diag sigma(x)^2).

    Reads the encoder output ``(B, 2 * z_dim)``: the first half is ``mu``, the second half an
    unconstrained ``rho`` with ``sigma = softplus(rho) + min_scale`` (softplus keeps gradients
    bounded where ``exp`` would overflow; ``min_scale`` keeps ``log sigma`` finite).
    """

    def __init__(self, min_scale=1e-5):
        super().__init__()
        self.min_scale = min_scale

    def num_params(self, z_dim):
        return 2 * z_dim

    def loc_scale(self, out):
        loc, rho = out.chunk(2, dim=-1)  # (B, Z), (B, Z)
        return loc, F.softplus(rho) + self.min_scale

    def forward(self, out):
        loc, scale = self.loc_scale(out)
        return dist.Normal(loc, scale).to_event(1)

    def mean(self, out):
        """E_q[z], shape ``(B, z_dim)``."""
        return self.loc_scale(out)[0]


REGISTRY = {
    "diag": Choice("diag", "diagonal Normal, sigma = softplus(rho)",
                   lambda arg, ctx: no_arg("diag", arg) or DiagonalNormal()),
}

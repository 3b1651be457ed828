"""Priors p(z): modules whose ``forward()`` returns a distribution with event shape ``(z_dim,)``.

A prior's batch shape is ``()``; the model's ``"data"`` plate broadcasts it over the minibatch.
Learnable parameters are ``nn.Parameter``s of the module, which the model registers with Pyro.
"""

import pyro.distributions as dist
import torch
import torch.nn as nn

from .errors import check_positive
from .specs import Choice, no_arg


class StandardNormal(nn.Module):
    """p(z) = N(z; 0, I), with ``event_shape == (z_dim,)``."""

    def __init__(self, z_dim):
        super().__init__()
        self.z_dim = check_positive("latent dimension", z_dim)
        self.register_buffer("loc", torch.zeros(z_dim))
        self.register_buffer("scale", torch.ones(z_dim))

    def forward(self):
        return dist.Normal(self.loc, self.scale).to_event(1)


REGISTRY = {
    "normal": Choice("normal", "standard normal N(0, I)",
                     lambda arg, ctx: no_arg("normal", arg) or StandardNormal(ctx.z_dim)),
}

"""Likelihoods p(x|z): map a decoder's output to a distribution over x.

Each family declares the ``support`` its data must lie in (checked by ``check_data`` before any
training), how many decoder outputs it reads per data dimension (``num_params(data_dim)``), and
builds a distribution whose event shape is the data's: ``forward(out, event_dim)`` with ``out`` of
shape ``(..., B, D)`` gives batch shape ``(..., B)`` and event shape ``(D,)`` for ``event_dim=1``.
"""

import pyro.distributions as dist
import torch
import torch.nn as nn
from torch.distributions import constraints

from .errors import UserError, check_positive
from .specs import Choice, no_arg, number_arg


class Likelihood(nn.Module):
    """Base class: one decoder output per data dimension, data in ``support``."""

    support = constraints.real
    support_hint = "real numbers"

    def num_params(self, data_dim):
        return data_dim

    def check_data(self, x, fix=""):
        """Raise :class:`UserError` when ``x`` lies outside this likelihood's support."""
        if not bool(self.support.check(x).all()):
            raise UserError(f"{self.spec()} likelihood needs {self.support_hint}, but the data has "
                            f"other values{fix}")

    def spec(self):
        return type(self).__name__.lower()


class Bernoulli(Likelihood):
    """p(x|z) = prod_d Bernoulli(x_d; sigmoid(logits_d(z))): the decoder outputs logits.

    ``-log p(x|z)`` is the summed binary cross-entropy.
    """

    support = constraints.boolean
    support_hint = "binary data in {0, 1}"

    def forward(self, logits, event_dim=1):
        return dist.Bernoulli(logits=logits).to_event(event_dim)

    def mean(self, logits):
        return torch.sigmoid(logits)


class Normal(Likelihood):
    """p(x|z) = prod_d N(x_d; mu_d(z), scale^2) with a fixed ``scale``: the decoder outputs means.

    ``-log p(x|z) = ||x - mu||^2 / (2 scale^2) + D log(scale sqrt(2 pi))``: squared error.
    """

    def __init__(self, scale=1.0):
        super().__init__()
        self.register_buffer("scale", torch.tensor(float(check_positive("normal scale", scale))))

    def forward(self, loc, event_dim=1):
        return dist.Normal(loc, self.scale).to_event(event_dim)

    def mean(self, loc):
        return loc

    def spec(self):
        return f"normal:{self.scale.item():g}"


REGISTRY = {
    "bernoulli": Choice("bernoulli", "binary data; decoder outputs logits (cross-entropy)",
                        lambda arg, ctx: no_arg("bernoulli", arg) or Bernoulli()),
    "normal": Choice("normal:SCALE", "Normal with fixed scale; decoder outputs means (squared error)",
                     lambda arg, ctx: Normal(number_arg("normal:SCALE", arg))),
}

"""The discretised logistic (mixture): an exact probability mass over the 256 levels of an 8-bit value.

Kingma et al. (2016, the IAF paper, Appendix) model an 8-bit pixel with a logistic distribution
integrated over the pixel's bin; Salimans et al. (2017, PixelCNN++) mix K of them. The data here
are what the loader serves: an integer pixel k in 0..255 becomes x = k / 255, so the levels are
``x_k = k / (L - 1)`` (L = 256) and the bins are ``[x_k - h, x_k + h]`` with half-width
``h = 1 / (2 (L - 1))``, except that the first bin reaches down to -inf and the last up to +inf. With
the logistic CDF ``F(y) = sigmoid((y - mu) / s)``:

    P(k) = F(x_k + h) - F(x_k - h)        0 < k < L - 1
    P(0) = F(x_0 + h),  P(L - 1) = 1 - F(x_{L-1} - h)

These telescope: sum_k P(k) = 1 exactly, so log p(x) is a true discrete log-likelihood of the 8-bit
data and bits per dimension need no dequantisation. ``log P(k)`` is computed without cancellation
from ``sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - exp(b - a))`` (a > b), i.e.
``logsigmoid(a) + logsigmoid(-b) + log1mexp(2 h / s)`` (``a - b = 2 h / s``, taken as such rather than
as a difference of two rounded numbers); the edge bins are
``logsigmoid(a)`` and ``logsigmoid(-b)``. PixelCNN++ instead switches to the density at the bin
centre when the difference underflows; this identity needs no switch.
"""

import math

import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution
from torch.distributions import constraints

LEVELS = 256  # an 8-bit value
MEAN_CHUNK = 32  # bin edges summed at once by DiscretizedLogistic.mean (memory: rows x D x K x this)


class _Grid(constraints.Constraint):
    """Values ``k / (levels - 1)`` for integers k in 0..levels-1 (within float rounding)."""

    is_discrete = True
    event_dim = 0

    def __init__(self, levels):
        super().__init__()
        self.levels = levels

    def check(self, value):
        k = value * (self.levels - 1)
        return (value >= 0) & (value <= 1) & ((k - k.round()).abs() < 1e-3)

    def __repr__(self):
        return f"grid({self.levels})"


def grid(levels=LEVELS):
    """The constraint "one of the ``levels`` values k / (levels - 1)"."""
    return _Grid(levels)


def log1mexp(d):
    """``log(1 - exp(-d))`` for ``d > 0``, accurate for small and large d (Maechler 2012)."""
    return torch.where(d < math.log(2), torch.log(-torch.expm1(-d)), torch.log1p(-torch.exp(-d)))


class DiscretizedLogistic(TorchDistribution):
    """A mixture of K logistics discretised to ``levels`` values ``k / (levels - 1)`` in [0, 1].

    :param loc: ``(..., K)`` component locations (data units: 0 is level 0, 1 is level L - 1).
    :param scale: ``(..., K)`` positive component scales.
    :param logits: ``(..., K)`` unnormalised mixture weights, or None for K = 1.
    Batch shape ``(...)``, event shape ``()``: one value per pixel; use ``.to_event(1)`` for an image.

    Example::

        >>> d = DiscretizedLogistic(torch.tensor([[0.5]]), torch.tensor([[0.1]]))
        >>> values = torch.arange(256.0)[:, None] / 255  # every level of one pixel
        >>> round(d.log_prob(values).exp().sum().item(), 5), round(d.mean.item(), 5)
        (1.0, 0.5)
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive, "logits": constraints.real}
    has_rsample = False

    def __init__(self, loc, scale, logits=None, levels=LEVELS, validate_args=None):
        if logits is None:
            logits = torch.zeros_like(loc)
        self.loc, self.scale, self.logits = torch.broadcast_tensors(loc, scale, logits)
        self.levels = levels
        super().__init__(self.loc.shape[:-1], torch.Size(), validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self):
        return grid(self.levels)

    def expand(self, batch_shape, _instance=None):
        shape = torch.Size(batch_shape) + self.loc.shape[-1:]
        return DiscretizedLogistic(self.loc.expand(shape), self.scale.expand(shape), self.logits.expand(shape),
                                   self.levels, validate_args=False)

    def component_log_prob(self, value):
        """``log P_m(k)`` of each component m, ``(..., K)``, for values ``(...)`` on the grid."""
        top = self.levels - 1
        k = (value * top).round().clamp(0, top).unsqueeze(-1)  # (..., 1) the level's index
        half = 0.5 / top
        centre = k / top
        a = (centre + half - self.loc) / self.scale  # upper edge, standardised: (..., K)
        b = (centre - half - self.loc) / self.scale  # lower edge
        upper, lower = F.logsigmoid(a), F.logsigmoid(-b)  # log F(upper edge), log (1 - F(lower edge))
        interior = upper + lower + log1mexp(2 * half / self.scale)  # log (F(upper) - F(lower)): a - b = 2 h / s
        return torch.where(k == 0, upper, torch.where(k == top, lower, interior))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        log_weights = F.log_softmax(self.logits, dim=-1)  # (..., K)
        return torch.logsumexp(log_weights + self.component_log_prob(value), dim=-1)

    @property
    def mean(self):
        """Exact mean of the discrete values: ``E[x] = (1 / (L-1)) sum_{j=1}^{L-1} P(k >= j)``, with
        ``P(k >= j) = sum_m w_m sigmoid((mu_m - e_j) / s_m)`` at the bin edges ``e_j = (j - 1/2) / (L-1)``."""
        top = self.levels - 1
        weights = F.softmax(self.logits, dim=-1).unsqueeze(-1)  # (..., K, 1)
        loc, scale = self.loc.unsqueeze(-1), self.scale.unsqueeze(-1)
        total = torch.zeros(self.batch_shape, dtype=self.loc.dtype, device=self.loc.device)
        for start in range(1, top + 1, MEAN_CHUNK):
            edges = (torch.arange(start, min(start + MEAN_CHUNK, top + 1), dtype=self.loc.dtype,
                                  device=self.loc.device) - 0.5) / top  # (J,)
            total = total + (weights * torch.sigmoid((loc - edges) / scale)).sum((-2, -1))
        return total / top

    def sample(self, sample_shape=torch.Size()):  # noqa: B008 (torch's signature)
        """Pick a component, draw a logistic ``mu + s (log u - log(1 - u))``, and take its bin."""
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            m = torch.distributions.Categorical(logits=self.logits).sample(sample_shape).unsqueeze(-1)
            loc = self.loc.expand(shape + self.loc.shape[-1:]).gather(-1, m).squeeze(-1)
            scale = self.scale.expand(shape + self.scale.shape[-1:]).gather(-1, m).squeeze(-1)
            u = torch.rand(shape, dtype=loc.dtype, device=loc.device).clamp(1e-6, 1 - 1e-6)
            y = loc + scale * (torch.log(u) - torch.log1p(-u))
            top = self.levels - 1
            return (y * top).round().clamp(0, top) / top

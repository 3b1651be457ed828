"""Likelihoods p(x|z): map a decoder's output to a distribution over x.

Each family declares the ``support`` its data must lie in (checked by ``check_data`` before any
training), how many decoder outputs it reads per data dimension (``num_params(data_dim)``), and
builds a distribution whose event shape is the data's: ``forward(out, event_dim)`` with ``out`` of
shape ``(..., B, D)`` gives batch shape ``(..., B)`` and event shape ``(D,)`` for ``event_dim=1``.

A family that is a probability mass over the L levels k / (L - 1) of each value declares
``discrete_levels = L`` (the Bernoulli: 2; the discretised logistic: 256), so its log p(x) is a
discrete log-likelihood and bits per dimension need no dequantisation; a density declares None.

For mixtures (:class:`~pyro_vae.models.mixture.MixtureModel`) a family also scores every (row,
component) pair at once (``pairwise_log_prob``; matrix products where the family allows) and, where
``closed_form_m_step`` says so, gives the weighted maximum-likelihood fit of EM's M-step (``m_step``).
"""

import math

import pyro.distributions as dist
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from ..errors import UserError, check_int, check_positive
from ..specs import Registry
from .discretized import LEVELS, grid
from .discretized import DiscretizedLogistic as DiscretizedLogisticDistribution

REGISTRY = Registry("likelihood")  # spec names of the likelihoods, registered by @REGISTRY.register
PAIRWISE_ELEMENTS = 1 << 23  # (row, component, pixel) triples broadcast at once by pairwise_log_prob
PROB_FLOOR = 1e-6  # EM keeps a Bernoulli mean in [PROB_FLOOR, 1 - PROB_FLOOR]: log p stays finite


def weighted_moments(x, weights):
    """Per-component weight ``N_k`` ``(K,)``, weighted mean ``(K, D)`` and weighted variance ``(K, D)``
    of the rows of ``x`` ``(N, D)`` under ``weights`` ``(N, K)`` (components with no weight get 0)."""
    total = weights.sum(0)  # (K,)
    safe = total.clamp_min(torch.finfo(x.dtype).tiny)[:, None]
    mean = weights.T @ x / safe  # (K, D)
    var = (weights.T @ (x * x) / safe - mean**2).clamp_min(0.0)  # E[x^2] - E[x]^2, as scikit-learn's diag
    return total, mean, var


def softplus_inverse(y):
    """``log(exp(y) - 1)`` for ``y > 0``, stable for large ``y``."""
    return y + torch.log(-torch.expm1(-y))


class Likelihood(nn.Module):
    """Base class: one decoder output per data dimension, data in ``support``."""

    support = constraints.real
    support_hint = "real numbers"

    #: The family is a probability mass over this many levels k / (L - 1) of each value in [0, 1]
    #: (a pmf, not a density): log p(x) is a discrete log-likelihood, -log p(x) / (D ln 2) its bits
    #: per dimension. None: a density over continuous values.
    discrete_levels = None

    def num_params(self, data_dim):
        return data_dim

    def check_data(self, x, fix="", param=None):
        """Raise :class:`UserError` when ``x`` lies outside this likelihood's support; ``fix`` is
        appended to the message (the caller knows how its user changes the data) and ``param``
        names the parameters it speaks of."""
        if not bool(self.support.check(x).all()):
            raise UserError(f"{self.spec()} likelihood needs {self.support_hint}, but the data has "
                            f"other values{fix}", param=param)

    def spec(self):
        """The spec that builds this likelihood (``normal:0.1``); the class name for one that has none."""
        return REGISTRY.spec_of(self) or type(self).__name__

    #: :meth:`m_step` has a closed form, so a mixture of this family can be fitted by EM.
    closed_form_m_step = False

    def m_step(self, x, weights):
        """Decoder outputs ``(K, num_params(D))`` maximising ``sum_n sum_k w_nk log p(x_n | out_k)``
        (within the family's constraints, e.g. a floor on a scale): EM's M-step.

        :param x: ``(N, D)`` rows.
        :param weights: ``(N, K)`` non-negative weights (responsibilities).
        """
        raise NotImplementedError(f"the {self.spec()} likelihood has no closed-form M-step")

    def pairwise_log_prob(self, out, x):
        """``log p(x_n | out_k)`` for every row ``x_n`` of ``x`` ``(N, D)`` and every row ``out_k`` of
        ``out`` ``(K, num_params(D))``: ``(N, K)``. Broadcast in chunks of rows here; families with
        a quadratic log-density override it with matrix products (an EM iteration on 50,000 x 784
        images and K = 500 is then a few matrix products)."""
        dist_k = self(out, event_dim=1)  # batch (K,), event (D,)
        rows = max(1, PAIRWISE_ELEMENTS // max(1, out.shape[0] * x.shape[-1]))
        return torch.cat([dist_k.log_prob(x[i : i + rows].unsqueeze(-2)) for i in range(0, x.shape[0], rows)])


class BernoulliLogits(dist.Bernoulli):
    """Pyro's ``Bernoulli(logits=...)`` with a faster ``log_prob`` for evaluation.

    Without gradients (evaluation) and for x in {0, 1}, log p(x | l) = -softplus((1 - 2x) l): one
    product with the (B, D) sign, which broadcasts over the draws, and torch's ``softplus``, about
    0.7x the time of torch's ``binary_cross_entropy_with_logits`` on a K = 5000 chunk on this
    project's CPU (scripts/bernoulli_ops.py), and closer to the exact value (softplus returns u
    itself above u = 20, where log1p(exp(-u)) < 2.1e-9). With gradients the cross-entropy stays:
    its backward is faster than softplus's and the JIT objectives' fused graphs keep its output
    intact. Grey x keeps the cross-entropy too. The sign flips in place: the cross-entropy's
    backward does not read its output.
    """

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        if not torch.is_grad_enabled() and bool(constraints.boolean.check(value).all()):  # x in {0, 1}
            return F.softplus(self.logits * (1 - 2 * value)).neg_()  # (..., B, D)
        logits, value = broadcast_all(self.logits, value)
        return F.binary_cross_entropy_with_logits(logits, value, reduction="none").neg_()


@REGISTRY.register("bernoulli", "binary data; decoder outputs logits (cross-entropy)")
class Bernoulli(Likelihood):
    """p(x|z) = prod_d Bernoulli(x_d; sigmoid(logits_d(z))): the decoder outputs logits.

    ``-log p(x|z)`` is the summed binary cross-entropy.

    Example::

        >>> logits, x = torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 0.0]])
        >>> -Bernoulli()(logits).log_prob(x), F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        (tensor([2.8201]), tensor(2.8201))
    """

    support = constraints.boolean
    support_hint = "binary data in {0, 1}"
    discrete_levels = 2

    def forward(self, logits, event_dim=1):
        return BernoulliLogits(logits=logits).to_event(event_dim)

    def mean(self, logits):
        return torch.sigmoid(logits)

    closed_form_m_step = True

    def m_step(self, x, weights):
        """Logits of the weighted pixel means, kept in [PROB_FLOOR, 1 - PROB_FLOOR] (the
        per-pixel log-likelihood is concave in the mean, so clamping is the constrained maximum)."""
        _, mean, _ = weighted_moments(x, weights)
        return torch.logit(mean.clamp(PROB_FLOOR, 1 - PROB_FLOOR))

    def pairwise_log_prob(self, logits, x):
        """``x log sigmoid(l) + (1 - x) log sigmoid(-l)`` summed over pixels, two matrix products."""
        return x @ F.logsigmoid(logits).T + (1 - x) @ F.logsigmoid(-logits).T  # (N, K)


@REGISTRY.register("cbernoulli", "continuous Bernoulli for grey levels in [0, 1]; decoder outputs logits")
class ContinuousBernoulli(Likelihood):
    """p(x|z) = prod_d CB(x_d; sigmoid(logits_d(z))) for grey levels x_d in [0, 1].

    The continuous Bernoulli (Loaiza-Ganem & Cunningham 2019) is the Bernoulli cross-entropy with
    its missing normaliser: ``CB(x; l) = C(l) l^x (1 - l)^(1 - x)``,
    ``C(l) = 2 artanh(1 - 2 l) / (1 - 2 l)`` (``C(1/2) = 2``). It is a proper density on [0, 1],
    so, unlike a Bernoulli on grey data, its ELBO bounds a log-likelihood. Its mean is not
    ``sigmoid(logits)``; :meth:`mean` returns the true mean.

    Example::

        >>> lik = ContinuousBernoulli()
        >>> lik(torch.zeros(1, 1)).log_prob(torch.tensor([[0.3]])).exp()  # lambda = 1/2: the uniform density on [0, 1]
        tensor([1.])
    """

    support = constraints.unit_interval
    support_hint = "data in [0, 1]"

    def forward(self, logits, event_dim=1):
        return dist.ContinuousBernoulli(logits=logits).to_event(event_dim)

    def mean(self, logits):
        return dist.ContinuousBernoulli(logits=logits).mean


@REGISTRY.register("normal", "Normal with fixed scale; decoder outputs means (squared error)", arg="SCALE",
                   attr="scale", example=0.3)
class Normal(Likelihood):
    """p(x|z) = prod_d N(x_d; mu_d(z), scale^2) with a fixed ``scale``: the decoder outputs means.

    ``-log p(x|z) = ||x - mu||^2 / (2 scale^2) + D log(scale sqrt(2 pi))``: squared error.

    Example::

        >>> mu, x = torch.zeros(1, 4), torch.ones(1, 4)
        >>> -Normal(1.0)(mu).log_prob(x) - 0.5 * ((x - mu) ** 2).sum() - 4 * 0.5 * math.log(2 * math.pi)
        tensor([0.])
    """

    def __init__(self, scale=1.0):
        super().__init__()
        self.register_buffer("scale", torch.tensor(check_positive("scale", scale)))

    def forward(self, loc, event_dim=1):
        return dist.Normal(loc, self.scale).to_event(event_dim)

    def mean(self, loc):
        return loc

    closed_form_m_step = True

    def m_step(self, x, weights):
        """The weighted means (the scale is fixed)."""
        return weighted_moments(x, weights)[1]

    def pairwise_log_prob(self, loc, x):
        return _gaussian_pairwise(x, loc, self.scale.expand_as(loc))


class PixelScale(nn.Module):
    """One learned positive scale per data dimension: ``scale = min_scale + softplus(raw)``, (D,).

    Initialised at ``init_scale``; ``min_scale`` is a floor that keeps the density bounded where a
    pixel is (nearly) constant, since there the maximum-likelihood scale is 0.
    """

    def __init__(self, data_dim, min_scale=0.01, init_scale=0.1):
        super().__init__()
        check_int("data_dim", data_dim)
        self.min_scale = check_positive("min_scale", min_scale)
        raw = torch.tensor(max(init_scale - min_scale, 1e-3)).expm1().log()  # softplus^-1
        self.raw = nn.Parameter(raw.expand(data_dim).clone())  # (D,)

    def forward(self):
        return self.min_scale + F.softplus(self.raw)


@REGISTRY.register("normal-learned", "Normal with one learned scale per pixel (floor 0.01)", arg="FLOOR",
                   default=0.01, attr=lambda lik: lik.scale.min_scale, example=0.05,
                   build=lambda cls, floor, ctx: cls(ctx.data_dim, floor))
class NormalLearnedScale(Likelihood):
    """p(x|z) = prod_d N(x_d; mu_d(z), sigma_d^2) with one learned sigma_d per pixel (not per z).

    The decoder outputs means; ``sigma = min_scale + softplus(raw)`` is a parameter of this module.

    Example::

        >>> lik = NormalLearnedScale(784)
        >>> [name for name, _ in lik.named_parameters()], round(lik.scale()[0].item(), 4)
        (['scale.raw'], 0.1)
    """

    def __init__(self, data_dim, min_scale=0.01):
        super().__init__()
        self.scale = PixelScale(data_dim, min_scale)

    def forward(self, loc, event_dim=1):
        return dist.Normal(loc, self.scale()).to_event(event_dim)

    def mean(self, loc):
        return loc


@REGISTRY.register("normal-hetero", "Normal, decoder outputs means and scales (floor 0.01)", arg="FLOOR",
                   default=0.01, attr="min_scale", example=0.05)
class NormalHeteroscedastic(Likelihood):
    """p(x|z) = N(x; mu(z), diag sigma(z)^2): the decoder outputs both (the lecture's N(mu_x|z, Sigma_x|z)).

    The decoder's output ``(..., 2 D)`` is split into ``mu`` and an unconstrained ``rho`` with
    ``sigma = min_scale + softplus(rho)``. Without the floor a decoder can shrink sigma towards 0
    on constant pixels and drive the likelihood to infinity (Mattei & Frellsen 2018).

    Example::

        >>> lik = NormalHeteroscedastic()
        >>> lik.num_params(784), lik(torch.zeros(2, 2 * 784)).event_shape
        (1568, torch.Size([784]))
    """

    def __init__(self, min_scale=0.01):
        super().__init__()
        self.min_scale = check_positive("min_scale", min_scale)

    def num_params(self, data_dim):
        return 2 * data_dim

    def loc_scale(self, out):
        loc, rho = out.chunk(2, dim=-1)  # (..., D), (..., D)
        return loc, self.min_scale + F.softplus(rho)

    def forward(self, out, event_dim=1):
        loc, scale = self.loc_scale(out)
        return dist.Normal(loc, scale).to_event(event_dim)

    def mean(self, out):
        return self.loc_scale(out)[0]


    closed_form_m_step = True

    def m_step(self, x, weights):
        """Weighted means and standard deviations (a diagonal Gaussian mixture's M-step, as
        scikit-learn's ``covariance_type="diag"``); a scale below the floor is set just above it
        (the log-likelihood is unimodal in each scale, so that is the constrained maximum)."""
        _, mean, var = weighted_moments(x, weights)
        excess = (var.sqrt() - self.min_scale).clamp_min(1e-6 * self.min_scale)
        return torch.cat([mean, softplus_inverse(excess)], -1)  # (K, 2 D)

    def pairwise_log_prob(self, out, x):
        return _gaussian_pairwise(x, *self.loc_scale(out))


@REGISTRY.register("laplace", "Laplace (L1 error); scale fixed, or learned per pixel if omitted", arg="SCALE",
                   default=None, attr=lambda lik: None if lik.pixel_scale is not None else lik.fixed_scale,
                   example=0.3, build=lambda cls, scale, ctx: cls(scale, data_dim=ctx.data_dim))
class Laplace(Likelihood):
    """p(x|z) = prod_d Laplace(x_d; mu_d(z), b_d): ``-log p(x|z) = sum_d |x_d - mu_d| / b_d + log(2 b_d)``.

    An L1 reconstruction error. The decoder outputs the locations ``mu``; the scale ``b`` is fixed
    (``scale``) or, when ``scale`` is None, learned per pixel (needs ``data_dim``).

    Example::

        >>> mu, x = torch.zeros(1, 3), torch.tensor([[1.0, -2.0, 0.5]])
        >>> -Laplace(1.0)(mu).log_prob(x) - (x - mu).abs().sum() - 3 * math.log(2)
        tensor([0.])
    """

    def __init__(self, scale=None, data_dim=None, min_scale=0.01):
        super().__init__()
        self.pixel_scale = None  # learned per pixel when no fixed scale is given
        if scale is None:
            if data_dim is None:
                raise UserError("Laplace with a learned scale needs data_dim", param="data_dim")
            self.pixel_scale = PixelScale(data_dim, min_scale)
        else:
            self.register_buffer("fixed_scale", torch.tensor(check_positive("scale", scale)))

    def scale(self):
        return self.pixel_scale() if self.pixel_scale is not None else self.fixed_scale

    def forward(self, loc, event_dim=1):
        return dist.Laplace(loc, self.scale()).to_event(event_dim)

    def mean(self, loc):
        return loc


@REGISTRY.register("dlogistic", "8-bit data, not binarised: exact mass of each level 0..255 under a "
                   "discretised logistic, or a mixture of K (PixelCNN++)", arg="K", cast=int, default=1,
                   attr="components", example=3)
class DiscretizedLogistic(Likelihood):
    """p(x|z) = prod_d P(k_d | z): a (mixture of K) discretised logistic(s) per value, for 8-bit data.

    Each value x_d = k_d / 255 (the loader's scaling of a uint8 pixel k_d) gets the exact
    probability of its 8-bit level k_d: the logistic's mass on the bin [x_d - 1/510, x_d + 1/510],
    the edge bins k = 0 and 255 taking the tails (Kingma et al. 2016; Salimans et al. 2017,
    PixelCNN++; see :mod:`pyro_vae.families.discretized`). The 256 probabilities sum to 1, so log p(x)
    is a discrete log-likelihood. The decoder outputs, per value, a location ``mu`` (data units,
    0 to 1) and ``rho`` with scale ``s = min_scale + softplus(rho)``; with K > 1 components also K
    mixture logits: ``(..., 2 D)`` for K = 1, ``(..., 3 K D)`` for K > 1, read as consecutive blocks
    of D (``[logits_1..K | mu_1..K | rho_1..K]``). :meth:`mean` is the exact mean of the 256 levels.

    Example::

        >>> lik = DiscretizedLogistic(components=2)
        >>> out = torch.randn(3, lik.num_params(4))  # 3 images of 4 pixels
        >>> levels = torch.arange(256.0)[:, None, None] / 255  # (256, 1, 1): every level of every pixel
        >>> d = lik(out, event_dim=0)  # one distribution per pixel, batch (3, 4)
        >>> lik.num_params(4), torch.allclose(d.log_prob(levels).exp().sum(0), torch.ones(3, 4))
        (24, True)
    """

    support = grid(LEVELS)
    support_hint = "8-bit intensities k / 255 (uint8 pixels 0..255, which the loader divides by 255)"
    discrete_levels = LEVELS

    def __init__(self, components=1, min_scale=1e-4):
        super().__init__()
        self.components = check_int("components", components)
        self.min_scale = check_positive("min_scale", min_scale)

    def num_params(self, data_dim):
        return (2 if self.components == 1 else 3 * self.components) * data_dim

    def parameters_of(self, out):
        """``(logits or None, loc, scale)``, each ``(..., D, K)``, from the decoder's output."""
        k = self.components
        blocks = 2 if k == 1 else 3 * k
        parts = out.unflatten(-1, (blocks, out.shape[-1] // blocks)).transpose(-1, -2)  # (..., D, blocks)
        if k == 1:
            return None, parts[..., :1], self.min_scale + F.softplus(parts[..., 1:])
        logits, loc, rho = parts.split(k, dim=-1)  # (..., D, K) each
        return logits, loc, self.min_scale + F.softplus(rho)

    def forward(self, out, event_dim=1):
        logits, loc, scale = self.parameters_of(out)
        return DiscretizedLogisticDistribution(loc, scale, logits).to_event(event_dim)

    def mean(self, out):
        logits, loc, scale = self.parameters_of(out)
        return DiscretizedLogisticDistribution(loc, scale, logits).mean


def _gaussian_pairwise(x, loc, scale):
    """``sum_d log N(x_nd; loc_kd, scale_kd^2)`` for all (n, k), ``(N, K)``, from the expanded square
    ``-(x^2 / s^2 - 2 x mu / s^2 + mu^2 / s^2) / 2`` (three matrix products)."""
    precision = scale**-2  # (K, D)
    quadratic = (x * x) @ precision.T - 2 * x @ (loc * precision).T + (loc * loc * precision).sum(-1)  # (N, K)
    return -0.5 * quadratic - scale.log().sum(-1) - 0.5 * x.shape[-1] * math.log(2 * math.pi)

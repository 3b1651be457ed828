"""Posterior families q(z|x): map an encoder's output to a distribution over z.

Each family says how many encoder outputs it reads (``num_params(z_dim)``) and turns an output of
shape ``(B, num_params)`` into a distribution with batch shape ``(B,)`` and event shape ``(z_dim,)``
that has ``rsample`` (the ELBOs here are reparameterised). Every family derives from
:class:`Posterior`, which declares ``has_density`` (False for a point mass, whose ``log_prob`` is
not a density: it is 0 at its value).

Analytic KL(q || p) against a diagonal-Normal prior is registered with torch's ``kl_divergence``
for the full-covariance and low-rank families, so ``meanfield`` keeps an analytic KL with them.
"""

import math

import pyro.distributions as dist
import torch
import torch.nn as nn
import torch.nn.functional as F
from pyro.distributions.transforms import AffineAutoregressive, ConditionalAffineAutoregressive
from pyro.nn import AutoRegressiveNN, ConditionalAutoRegressiveNN
from torch.distributions import Independent, LowRankMultivariateNormal, MultivariateNormal, register_kl

from ..errors import check_int, check_positive
from ..specs import Registry

REGISTRY = Registry("posterior")  # spec names of the posterior families, registered by @REGISTRY.register


class Posterior(nn.Module):
    """Base class of the posterior families: encoder output ``(B, num_params(Z))`` -> q(z|x).

    ``forward(out)`` returns a distribution with batch shape ``(B,)`` and event shape ``(Z,)``;
    ``mean(out)`` a point summary ``(B, Z)`` (E_q[z] where it has a closed form).
    """

    #: False for a point mass: its ``log_prob`` is 0 at its value, not a density, so importance
    #: weights, the VampPrior and IWAE objectives cannot use it.
    has_density = True

    #: Scoring a point the family did not draw costs about one network pass per (point, input) pair.
    #: False for a flow conditioned on the encoder (:class:`ContextIAF`): its inverse takes Z
    #: sequential passes per pair, so the VampPrior (q(z | u_k) at every pseudo-input for every z)
    #: would need one inverse per (data point, pseudo-input) pair.
    cheap_density = True

    #: ``mean(out)`` is E_q[z]. False for a flow, whose ``mean`` is a point summary (the flow at the
    #: base mean): E_q[z] has no closed form there.
    mean_is_expectation = True

    def num_params(self, z_dim):
        """Encoder outputs this family reads for a latent of dimension ``z_dim``."""
        raise NotImplementedError

    def forward(self, out):
        raise NotImplementedError

    def mean(self, out):
        raise NotImplementedError

    def spec(self):
        """The spec that builds this family (``lowrank:2``); the class name for one that has none."""
        return REGISTRY.spec_of(self) or type(self).__name__


@REGISTRY.register("diag", "diagonal Normal, sigma = softplus(rho)")
class DiagonalNormal(Posterior):
    """q(z|x) = N(z; mu(x), diag sigma(x)^2).

    Reads the encoder output ``(B, 2 * z_dim)``: the first half is ``mu``, the second half an
    unconstrained ``rho`` with ``sigma = softplus(rho) + min_scale`` (softplus keeps gradients
    bounded where ``exp`` would overflow; ``min_scale`` keeps ``log sigma`` finite).

    Example::

        >>> q = DiagonalNormal()(torch.zeros(5, DiagonalNormal().num_params(3)))
        >>> q.batch_shape, q.event_shape, q.rsample().shape
        (torch.Size([5]), torch.Size([3]), torch.Size([5, 3]))
    """

    def __init__(self, min_scale=1e-5):
        super().__init__()
        self.min_scale = check_positive("min_scale", min_scale)

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


@REGISTRY.register("lowrank", "Normal with covariance W W^T + diag, W of rank R", arg="R", cast=int, attr="rank",
                   example=2)
class LowRankNormal(Posterior):
    """q(z|x) = N(z; mu(x), W(x) W(x)^T + diag sigma(x)^2) with ``W`` of shape (Z, rank).

    Encoder output ``(B, Z (2 + rank))``: ``mu``, ``rho`` (``sigma = softplus(rho) + min_scale``,
    as :class:`DiagonalNormal`), then ``W`` row-major. With ``W = 0`` it is :class:`DiagonalNormal`.

    Example::

        >>> family = LowRankNormal(rank=2)
        >>> q = family(torch.zeros(5, family.num_params(3)))
        >>> cov = q.covariance_matrix
        >>> cov.shape, bool(torch.allclose(cov[0], (math.log(2) + 1e-5) ** 2 * torch.eye(3)))
        (torch.Size([5, 3, 3]), True)
    """

    def __init__(self, rank, min_scale=1e-5):
        super().__init__()
        self.rank = check_int("rank", rank)
        self.min_scale = check_positive("min_scale", min_scale)

    def num_params(self, z_dim):
        return z_dim * (2 + self.rank)

    def forward(self, out):
        z_dim = out.shape[-1] // (2 + self.rank)
        loc, rho, factor = out.split([z_dim, z_dim, z_dim * self.rank], dim=-1)
        scale = F.softplus(rho) + self.min_scale  # (B, Z)
        factor = factor.reshape(*out.shape[:-1], z_dim, self.rank)  # (B, Z, R)
        return dist.LowRankMultivariateNormal(loc, factor, scale**2)

    def mean(self, out):
        return out[..., : out.shape[-1] // (2 + self.rank)]


@REGISTRY.register("full", "full-covariance Normal from a Cholesky factor")
class FullNormal(Posterior):
    """q(z|x) = N(z; mu(x), L(x) L(x)^T), ``L`` lower triangular with a positive diagonal (Cholesky).

    Encoder output ``(B, 2 Z + Z (Z - 1) / 2)``: ``mu``, ``rho`` for the diagonal of ``L``
    (``softplus(rho) + min_scale``, as :class:`DiagonalNormal`), then the strictly lower triangle
    of ``L`` in ``torch.tril_indices`` order. With a zero lower triangle it is :class:`DiagonalNormal`.

    Example::

        >>> family = FullNormal()
        >>> family.num_params(3), family(torch.randn(5, 9)).scale_tril.shape
        (9, torch.Size([5, 3, 3]))
    """

    def __init__(self, min_scale=1e-5):
        super().__init__()
        self.min_scale = check_positive("min_scale", min_scale)

    def num_params(self, z_dim):
        return 2 * z_dim + z_dim * (z_dim - 1) // 2

    @staticmethod
    def _z_dim(num_params):
        return int(round((math.sqrt(9 + 8 * num_params) - 3) / 2))  # solves Z^2 + 3 Z = 2 n

    def loc_tril(self, out):
        z_dim = self._z_dim(out.shape[-1])
        loc, rho, lower = out.split([z_dim, z_dim, z_dim * (z_dim - 1) // 2], dim=-1)
        rows, cols = torch.tril_indices(z_dim, z_dim, offset=-1, device=out.device)
        strict = lower.new_zeros(*lower.shape[:-1], z_dim * z_dim).index_copy(-1, rows * z_dim + cols, lower)
        tril = strict.reshape(*lower.shape[:-1], z_dim, z_dim)  # (B, Z, Z), zero on and above the diagonal
        return loc, tril + torch.diag_embed(F.softplus(rho) + self.min_scale)

    def forward(self, out):
        loc, tril = self.loc_tril(out)
        return dist.MultivariateNormal(loc, scale_tril=tril)

    def mean(self, out):
        return out[..., : self._z_dim(out.shape[-1])]


@REGISTRY.register("iaf-shared", "N inverse autoregressive flows shared by all data points, no context (class IAF)",
                   arg="N", cast=int, attr="num_flows", example=2, build=lambda cls, n, ctx: cls(ctx.z_dim, n))
class IAF(Posterior):
    """Inverse autoregressive flow on a diagonal Normal, one flow shared by all data points (spec
    ``iaf-shared:N``; the paper's context-conditioned form is :class:`ContextIAF`, ``iaf:N``):
    ``z = f_N o ... o f_1(z_0)``, ``z_0 ~ N(mu(x), diag sigma(x)^2)``.

    Each ``f_i`` is Pyro's :class:`~pyro.distributions.transforms.AffineAutoregressive`,
    ``y = mu_i(x) + exp(s_i(x)) * x`` with a MADE network (:class:`~pyro.nn.AutoRegressiveNN`,
    hidden ``[3 Z + 1]`` as Pyro's ``affine_autoregressive``); the variable order is reversed
    between steps, as in the paper. The flows are shared by all data points (not conditioned on an
    encoder context): the amortised part is the base Normal. This keeps scoring a point other than
    the flow's own sample cheap (one inverse, Z sequential passes, for all data points at once),
    which the VampPrior needs; a context per data point would make it one inverse per pair
    (data point, pseudo-input). The last layer of every MADE starts at zero, so the flow starts as
    the identity and q starts as a :class:`DiagonalNormal`.

    ``log_prob`` of the flow's own sample is exact and cheap through Pyro's transform cache;
    analytic KL has no closed form, so ``meanfield`` samples this term.

    Example::

        >>> family = IAF(3, num_flows=2)
        >>> out = torch.randn(5, family.num_params(3))
        >>> z = family(out).rsample()  # the flows start as the identity: q is DiagonalNormal's
        >>> bool(torch.allclose(family(out).log_prob(z), DiagonalNormal()(out).log_prob(z)))
        True
    """

    mean_is_expectation = False

    def __init__(self, z_dim, num_flows, hidden_dims=None, min_scale=1e-5):
        super().__init__()
        check_int("z_dim", z_dim)
        self.num_flows = check_int("num_flows", num_flows)
        self.base = DiagonalNormal(min_scale)
        hidden_dims = list(hidden_dims or [3 * z_dim + 1])
        identity, reverse = torch.arange(z_dim), torch.arange(z_dim - 1, -1, -1)
        flows = []
        for i in range(num_flows):
            arn = AutoRegressiveNN(z_dim, hidden_dims, permutation=identity if i % 2 == 0 else reverse)
            nn.init.zeros_(arn.layers[-1].weight)
            nn.init.zeros_(arn.layers[-1].bias)
            flows.append(AffineAutoregressive(arn))
        self.flows = nn.ModuleList(flows)

    def num_params(self, z_dim):
        return self.base.num_params(z_dim)

    def forward(self, out):
        return dist.TransformedDistribution(self.base(out), list(self.flows))

    def mean(self, out):
        """The flow applied to the base mean, ``f(mu(x))`` (a point summary; E_q[z] has no closed form)."""
        z = self.base.mean(out)
        for flow in self.flows:
            z = flow(z)
        return z


@REGISTRY.register("iaf", "N inverse autoregressive flows on a diagonal Normal, each conditioned on a context from "
                   "the encoder (class ContextIAF; Kingma et al. 2016)", arg="N", cast=int, attr="num_flows", example=2,
                   build=lambda cls, n, ctx: cls(ctx.z_dim, n))
class ContextIAF(Posterior):
    """Inverse autoregressive flow as in Kingma et al. (2016, sec. 4 and fig. 2), spec ``iaf:N``: the
    encoder emits a context h(x) beside the base Normal's parameters, and every autoregressive step
    reads it::

        z_0 ~ N(mu(x), diag sigma(x)^2),    z_t = m_t(z_{t-1}, h) + exp(s_t(z_{t-1}, h)) * z_{t-1}
        log q(z_N | x) = log N(z_0; mu, sigma^2) - sum_t sum_i s_t,i(z_{t-1}, h)

    Each step is Pyro's :class:`~pyro.distributions.transforms.ConditionalAffineAutoregressive` on a
    :class:`~pyro.nn.ConditionalAutoRegressiveNN` (MADE whose hidden units also see h), hidden
    ``[3 Z + 1]``, the variable order reversed between steps. The last layer of every MADE starts at
    zero, so each step starts as the identity and q as a :class:`DiagonalNormal`.

    Encoder output ``(B, 2 Z + C)``: ``mu``, ``rho`` (as :class:`DiagonalNormal`), then h ``(B, C)``
    (``context_dim`` C, default Z). ``log_prob`` of the flow's own sample is exact and cheap (Pyro's
    transform cache); a point it did not draw needs the inverse, Z sequential passes for each
    (point, context) pair (``cheap_density = False``: the VampPrior refuses it; use
    :class:`IAF`, whose flow is shared, there).

    Example::

        >>> family = ContextIAF(3, num_flows=2)
        >>> out = torch.randn(5, family.num_params(3))  # (B, 2 Z + C): mu, rho, context
        >>> z = family(out).rsample()  # the steps start as the identity: q is DiagonalNormal's
        >>> bool(torch.allclose(family(out).log_prob(z), DiagonalNormal()(out[:, :6]).log_prob(z), atol=1e-6))
        True
    """

    cheap_density = False
    mean_is_expectation = False

    def __init__(self, z_dim, num_flows, context_dim=None, hidden_dims=None, min_scale=1e-5):
        super().__init__()
        self.z_dim = check_int("z_dim", z_dim)
        self.num_flows = check_int("num_flows", num_flows)
        self.context_dim = check_int("context_dim", context_dim if context_dim is not None else z_dim)
        self.base = DiagonalNormal(min_scale)
        hidden_dims = list(hidden_dims or [3 * z_dim + 1])
        identity, reverse = torch.arange(z_dim), torch.arange(z_dim - 1, -1, -1)
        flows = []
        for i in range(num_flows):
            arn = ConditionalAutoRegressiveNN(z_dim, self.context_dim, hidden_dims,
                                              permutation=identity if i % 2 == 0 else reverse)
            nn.init.zeros_(arn.layers[-1].weight)
            nn.init.zeros_(arn.layers[-1].bias)
            flows.append(ConditionalAffineAutoregressive(arn))
        self.flows = nn.ModuleList(flows)

    def num_params(self, z_dim):
        return self.base.num_params(z_dim) + self.context_dim

    def split(self, out):
        """``(base output (B, 2 Z), context h (B, C))``."""
        return out[..., : 2 * self.z_dim], out[..., 2 * self.z_dim :]

    def transforms(self, context):
        """The N steps conditioned on ``context`` ``(B, C)``: :class:`AffineAutoregressive` transforms."""
        return [flow.condition(context) for flow in self.flows]

    def forward(self, out):
        base_out, context = self.split(out)
        return dist.TransformedDistribution(self.base(base_out), self.transforms(context))

    def mean(self, out):
        """The flow applied to the base mean, ``f(mu(x); h(x))`` (a point summary, as :class:`IAF`'s)."""
        base_out, context = self.split(out)
        z = self.base.mean(base_out)
        for transform in self.transforms(context):
            z = transform(z)
        return z


@REGISTRY.register("delta", "point mass at the encoder output (deterministic autoencoder)")
class Delta(Posterior):
    """q(z|x) = delta(z - f(x)): a point mass at the encoder's output, for deterministic autoencoders.

    ``log_prob`` is 0 at the code, so the "ELBO" reads ``log p(x | f(x)) + log p(f(x))``: a
    reconstruction term plus the prior's log-density as a regulariser on the code (not a bound on
    log p(x)). Pyro's ``kl_divergence(Delta, p) = -log p(f(x))`` makes ``meanfield`` agree with it.

    Example::

        >>> out = torch.randn(5, 3)
        >>> q = Delta()(out)
        >>> torch.equal(q.sample(), out), q.log_prob(out), Delta.has_density
        (True, tensor([0., 0., 0., 0., 0.]), False)
    """

    has_density = False

    def num_params(self, z_dim):
        return z_dim

    def forward(self, out):
        return dist.Delta(out, event_dim=1)

    def mean(self, out):
        return out


def _kl_gaussian_diagonal_normal(p, q):
    """KL(p || q) for a Gaussian p (any covariance) and q = Independent(Normal(m, s), 1):

    ``-H(p) + 1/2 sum_j [log(2 pi s_j^2) + ((mu_j - m_j)^2 + Sigma_jj) / s_j^2]``.
    """
    if not (isinstance(q.base_dist, dist.Normal) and q.reinterpreted_batch_ndims == 1):
        raise NotImplementedError
    var_q = q.base_dist.scale**2
    cross = 0.5 * (torch.log(2 * math.pi * var_q) + ((p.loc - q.base_dist.loc) ** 2 + p.variance) / var_q)
    return cross.sum(-1) - p.entropy()


register_kl(MultivariateNormal, Independent)(_kl_gaussian_diagonal_normal)
register_kl(LowRankMultivariateNormal, Independent)(_kl_gaussian_diagonal_normal)

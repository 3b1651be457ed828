"""A linear-Gaussian VAE with closed-form log p(x) and posterior: the ground truth for bound tests.

    z ~ N(0, I_Z),    x | z ~ N(W z + b, s^2 I_D)
    => x ~ N(b, W W^T + s^2 I),   z | x ~ N(m(x), S),  S = (I + W^T W / s^2)^-1,  m(x) = S W^T (x - b) / s^2

With orthogonal columns of W, W^T W is diagonal, so S is diagonal and the exact posterior lies in
the DiagonalNormal family: a linear encoder can output it exactly.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import MultivariateNormal, kl_divergence

from pyro_vae import VAE, DiagonalNormal, Normal, StandardNormal

MIN_SCALE = 1e-5  # DiagonalNormal's default floor on sigma


class LinearGaussian:
    """Model parameters, the exact answers, and VAEs whose encoder is the exact posterior or a perturbation."""

    def __init__(self, z_dim=2, data_dim=5, noise=0.5, column_norms=(2.0, 0.7), weight=None, seed=0):
        """``weight``: a given W ``(D, Z)``; by default a random W with orthogonal columns of these norms."""
        g = torch.Generator().manual_seed(seed)
        a = torch.randn(data_dim, z_dim, generator=g, dtype=torch.float64)
        if weight is None:
            q, _ = torch.linalg.qr(a)  # (D, Z) orthonormal columns
            self.W = q * torch.tensor(column_norms, dtype=torch.float64)
        else:
            self.W = torch.as_tensor(weight, dtype=torch.float64)
            data_dim, z_dim = self.W.shape
        self.b = torch.randn(data_dim, generator=g, dtype=torch.float64)
        self.s = noise
        self.z_dim, self.data_dim = z_dim, data_dim
        eye = torch.eye(z_dim, dtype=torch.float64)
        self.post_cov = torch.linalg.inv(eye + self.W.T @ self.W / noise**2)  # (Z, Z)
        self.post_gain = self.post_cov @ self.W.T / noise**2  # (Z, D): m(x) = gain (x - b)

    def sample_x(self, n, seed=1):
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.z_dim, generator=g, dtype=torch.float64)
        return z @ self.W.T + self.b + self.s * torch.randn(n, self.data_dim, generator=g, dtype=torch.float64)

    def marginal(self):
        cov = self.W @ self.W.T + self.s**2 * torch.eye(self.data_dim, dtype=torch.float64)
        return MultivariateNormal(self.b, cov)

    def log_px(self, x):
        """Exact log p(x), ``(B,)``."""
        return self.marginal().log_prob(x)

    def posterior(self, x):
        """Exact p(z | x) as a batch of ``MultivariateNormal``."""
        return MultivariateNormal((x - self.b) @ self.post_gain.T, self.post_cov)

    def q(self, x, shift=0.0, scale_factor=1.0):
        """The encoder's q(z|x) for :meth:`vae` with the same ``shift`` / ``scale_factor``, as an MVN."""
        loc = (x - self.b) @ self.post_gain.T + shift
        sd = self.post_cov.diagonal().sqrt() * scale_factor
        return MultivariateNormal(loc, torch.diag_embed(sd.expand_as(loc) ** 2))

    def exact_elbo(self, x, shift=0.0, scale_factor=1.0):
        """ELBO(q) = log p(x) - KL(q || p(z|x)), exactly, ``(B,)``."""
        return self.log_px(x) - kl_divergence(self.q(x, shift, scale_factor), self.posterior(x))

    def vae(self, shift=0.0, scale_factor=1.0):
        """float64 VAE: linear decoder (W, b), ``Normal(s)`` likelihood, linear encoder whose
        DiagonalNormal is the exact posterior when ``shift=0, scale_factor=1`` (needs orthogonal W)."""
        decoder = nn.Linear(self.z_dim, self.data_dim).double()
        encoder = nn.Linear(self.data_dim, 2 * self.z_dim).double()
        sd = self.post_cov.diagonal().sqrt() * scale_factor
        rho = torch.log(torch.expm1(sd - MIN_SCALE))  # softplus^-1
        with torch.no_grad():
            decoder.weight.copy_(self.W)
            decoder.bias.copy_(self.b)
            encoder.weight.zero_()
            encoder.weight[: self.z_dim] = self.post_gain
            encoder.bias[: self.z_dim] = -self.post_gain @ self.b + shift
            encoder.bias[self.z_dim :] = rho
        assert torch.allclose(F.softplus(rho) + MIN_SCALE, sd)
        vae = VAE(encoder, decoder, prior=StandardNormal(self.z_dim), likelihood=Normal(self.s),
                  posterior=DiagonalNormal(MIN_SCALE))
        return vae.double()


class TwoLayerLinearGaussian:
    """A linear-Gaussian two-stochastic-layer model (the ``vae2`` shape) with closed-form log p(x):

        z1 ~ N(0, I_Z1),   z2 | z1 ~ N(A z1 + a, diag(t^2)),   x | z2 ~ N(W z2 + b, s^2 I_D)
        => x ~ N(W a + b,  W (A A^T + diag(t^2)) W^T + s^2 I).

    :meth:`vae` builds a float64 :class:`~pyro_vae.HierarchicalVAE` whose top decoder and decoder
    are these linear maps. The encoders are the exact conditionals p(z2 | x) (with z1 summed out) and
    p(z1 | z2) reduced to their diagonals, so the guide is close to, but not, the joint posterior.
    """

    def __init__(self, z1_dim=2, z2_dim=3, data_dim=5, noise=0.5, seed=0):
        g = torch.Generator().manual_seed(seed)
        rand = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
        self.A, self.a = rand(z2_dim, z1_dim), rand(z2_dim) * 0.5
        self.t = 0.3 + 0.4 * torch.rand(z2_dim, generator=g, dtype=torch.float64)
        self.W, self.b = rand(data_dim, z2_dim), rand(data_dim)
        self.s = noise
        self.z1_dim, self.z2_dim, self.data_dim = z1_dim, z2_dim, data_dim
        eye1 = torch.eye(z1_dim, dtype=torch.float64)
        prior_z2 = torch.linalg.inv(self.A @ self.A.T + torch.diag(self.t**2))  # precision of p(z2)
        cov2 = torch.linalg.inv(prior_z2 + self.W.T @ self.W / noise**2)  # (Z2, Z2): p(z2 | x)
        self.enc2 = (cov2 @ self.W.T / noise**2, cov2 @ (prior_z2 @ self.a - self.W.T @ self.b / noise**2),
                     cov2.diagonal().sqrt())  # loc = gain x + offset, scale
        cov1 = torch.linalg.inv(eye1 + self.A.T @ torch.diag(self.t**-2) @ self.A)  # (Z1, Z1): p(z1 | z2)
        gain1 = cov1 @ self.A.T @ torch.diag(self.t**-2)
        self.enc1 = (gain1, -gain1 @ self.a, cov1.diagonal().sqrt())

    def marginal(self):
        cov_z2 = self.A @ self.A.T + torch.diag(self.t**2)
        cov = self.W @ cov_z2 @ self.W.T + self.s**2 * torch.eye(self.data_dim, dtype=torch.float64)
        return MultivariateNormal(self.W @ self.a + self.b, cov)

    def log_px(self, x):
        """Exact log p(x), ``(B,)``."""
        return self.marginal().log_prob(x)

    def sample_x(self, n, seed=1):
        """``n`` draws of x from the model, ``(n, D)``."""
        g = torch.Generator().manual_seed(seed)
        z1 = torch.randn(n, self.z1_dim, generator=g, dtype=torch.float64)
        z2 = z1 @ self.A.T + self.a + self.t * torch.randn(n, self.z2_dim, generator=g, dtype=torch.float64)
        return z2 @ self.W.T + self.b + self.s * torch.randn(n, self.data_dim, generator=g, dtype=torch.float64)

    def vae(self, shift=0.0, scale_factor=1.0):
        """``shift`` moves the mean of q(z2 | x), ``scale_factor`` multiplies its scale."""
        from pyro_vae import HierarchicalVAE

        top_decoder = nn.Linear(self.z1_dim, 2 * self.z2_dim).double()
        decoder = nn.Linear(self.z2_dim, self.data_dim).double()
        encoder = nn.Linear(self.data_dim, 2 * self.z2_dim).double()
        top_encoder = nn.Linear(self.z2_dim, 2 * self.z1_dim).double()
        with torch.no_grad():
            top_decoder.weight.zero_()
            top_decoder.weight[: self.z2_dim] = self.A
            top_decoder.bias[: self.z2_dim] = self.a
            top_decoder.bias[self.z2_dim:] = torch.log(torch.expm1(self.t - MIN_SCALE))  # softplus^-1
            decoder.weight.copy_(self.W)
            decoder.bias.copy_(self.b)
            for net, (gain, offset, scale), move, factor in ((encoder, self.enc2, shift, scale_factor),
                                                             (top_encoder, self.enc1, 0.0, 1.0)):
                z = gain.shape[0]
                net.weight.zero_()
                net.weight[:z] = gain
                net.bias[:z] = offset + move
                net.bias[z:] = torch.log(torch.expm1(scale * factor - MIN_SCALE))
        return HierarchicalVAE(encoder, decoder, top_encoder, top_decoder, prior=StandardNormal(self.z1_dim),
                               likelihood=Normal(self.s), posterior=DiagonalNormal(MIN_SCALE),
                               z_dim=self.z2_dim).double()


class ConditionalLinearGaussian:
    """A class-conditional linear-Gaussian model with closed-form log p(x | y), log p(x) and posteriors:

        y ~ Cat(1 / C),   z ~ N(0, I_Z),   x | y, z ~ N(W z + b_y, s^2 I_D)
        => x | y ~ N(b_y, W W^T + s^2 I),   p(x) = (1 / C) sum_y N(x; b_y, W W^T + s^2 I),
           z | x, y ~ N(m, S),  S = (I + W^T W / s^2)^-1,  m = S W^T (x - b_y) / s^2.

    W has orthogonal columns, so S is diagonal and q(z | x, y) can be exact. :meth:`cvae` and :meth:`m2`
    build float64 models whose decoders are these maps (``ConditionalMLP`` without hidden layers is
    affine in ``[z, one_hot(y)]``) and whose encoders give the exact posterior, moved by ``shift``
    and with scales times ``scale_factor``.
    """

    def __init__(self, num_classes=10, z_dim=2, data_dim=5, noise=0.5, column_norms=(2.0, 0.7), seed=0):
        self.base = LinearGaussian(z_dim, data_dim, noise, column_norms, seed=seed)
        g = torch.Generator().manual_seed(seed + 1)
        self.B = 1.5 * torch.randn(num_classes, data_dim, generator=g, dtype=torch.float64)  # (C, D): b_y
        self.W, self.s = self.base.W, noise
        self.num_classes, self.z_dim, self.data_dim = num_classes, z_dim, data_dim

    def sample(self, n, seed=1):
        """``(x (n, D), y (n,))`` drawn from the model."""
        g = torch.Generator().manual_seed(seed)
        y = torch.randint(0, self.num_classes, (n,), generator=g)
        z = torch.randn(n, self.z_dim, generator=g, dtype=torch.float64)
        x = z @ self.W.T + self.B[y] + self.s * torch.randn(n, self.data_dim, generator=g, dtype=torch.float64)
        return x, y

    def marginal(self, y):
        cov = self.W @ self.W.T + self.s**2 * torch.eye(self.data_dim, dtype=torch.float64)
        return MultivariateNormal(self.B[y], cov)

    def log_px_given_y(self, x, y):
        """Exact log p(x | y), ``(B,)``."""
        return self.marginal(y).log_prob(x)

    def log_joint_labels(self, x):
        """Exact log p(x, y = c) for every class, ``(B, C)``."""
        classes = torch.arange(self.num_classes)
        return torch.stack([self.log_px_given_y(x, c.expand(len(x))) for c in classes], -1) \
            - math.log(self.num_classes)

    def log_px(self, x):
        """Exact log p(x) = logsumexp_y log p(x, y), ``(B,)``."""
        return torch.logsumexp(self.log_joint_labels(x), -1)

    def _nets(self, shift, scale_factor):
        from pyro_vae import ConditionalMLP

        c, z, d = self.num_classes, self.z_dim, self.data_dim
        gain = self.base.post_gain  # (Z, D)
        sd = self.base.post_cov.diagonal().sqrt() * scale_factor
        encoder = ConditionalMLP(d, c, [], 2 * z).double()
        decoder = ConditionalMLP(z, c, [], d).double()
        with torch.no_grad():
            decoder.input_layer.weight.copy_(self.W)
            decoder.input_layer.bias.zero_()
            decoder.condition_layer.weight.copy_(self.B.T)  # (D, C): + b_y
            encoder.input_layer.weight.zero_()
            encoder.input_layer.weight[:z] = gain
            encoder.input_layer.bias.zero_()
            encoder.input_layer.bias[:z] = shift
            encoder.input_layer.bias[z:] = torch.log(torch.expm1(sd - MIN_SCALE))
            encoder.condition_layer.weight.zero_()
            encoder.condition_layer.weight[:z] = -gain @ self.B.T  # - gain b_y
        return encoder, decoder

    def cvae(self, shift=0.0, scale_factor=1.0):
        """float64 :class:`~pyro_vae.ConditionalVAE` of this model (exact q(z | x, y) by default)."""
        from pyro_vae import ConditionalVAE

        encoder, decoder = self._nets(shift, scale_factor)
        return ConditionalVAE(encoder, decoder, self.num_classes, prior=StandardNormal(self.z_dim),
                              likelihood=Normal(self.s), posterior=DiagonalNormal(MIN_SCALE)).double()

    def m2(self, classifier, shift=0.0, scale_factor=1.0):
        """float64 :class:`~pyro_vae.SemiSupervisedVAE` of this model with the given classifier
        ``x (..., D) -> (..., C)`` logits of q(y | x)."""
        from pyro_vae import SemiSupervisedVAE

        encoder, decoder = self._nets(shift, scale_factor)
        return SemiSupervisedVAE(classifier.double(), encoder, decoder, self.num_classes,
                                 prior=StandardNormal(self.z_dim), likelihood=Normal(self.s),
                                 posterior=DiagonalNormal(MIN_SCALE)).double()

"""Deterministic autoencoders as Pyro programs: a VAE whose code is a point mass.

With a point-mass guide q(z|x) = delta(z - f(x~)), log q = 0 at its sample and the negative ELBO is
exactly a regularised autoencoder loss (Goodfellow et al. 2016, ch. 14):

    -ELBO = -log p(x | g(h)) - log p(h) + lambda_c ||J_f(x)||_F^2,     h = f(x~)

- plain (undercomplete): flat p(h) (log p = 0), x~ = x    -> L(x, g(f(x)))
- sparse: p(h) = prod_j Laplace(h_j; 0, 1/lambda)         -> + lambda |h|_1 + const
- denoising: x~ ~ C(x~ | x) (masking or Gaussian noise) in the guide; the model scores the clean x
- contractive: a ``pyro.factor`` of -lambda_c ||J_f(x)||_F^2 in the model, J_f the encoder Jacobian

L(x, g(h)) = -log p(x | g(h)) is the summed cross-entropy for a Bernoulli likelihood and the squared
error (scaled by 1/(2 s^2), plus a constant) for a Normal one.
"""

import pyro
import torch
import torch.nn as nn

from ..errors import check_positive
from .vae import VAE

# d s(a) / d a for the activations with a closed-form Jacobian
_SLOPES = {
    nn.Sigmoid: lambda a: torch.sigmoid(a) * (1 - torch.sigmoid(a)),
    nn.Tanh: lambda a: 1 - torch.tanh(a) ** 2,
    nn.ReLU: lambda a: (a > 0).to(a.dtype),
    nn.Softplus: lambda a: torch.sigmoid(a),  # beta = 1
    nn.ELU: lambda a: torch.where(a > 0, torch.ones_like(a), torch.exp(a)),  # alpha = 1
}


def jacobian_frobenius_sq(encoder, x):
    """||J_f(x)||_F^2 per row of ``x``: ``(B,)``, differentiable in the encoder's parameters.

    Closed forms (one forward pass), with a = W1 x + b1 and d = s'(a):

    - affine f = W1 x + b1:                 ||J||^2 = ||W1||_F^2
    - one layer f = s(a):                   ||J||^2 = sum_j d_j^2 ||W1_j||^2
    - one hidden layer f = W2 s(a) + b2:    J = W2 diag(d) W1, so
      ||J||^2 = sum_ij d_i d_j G_ij with G = (W1 W1^T) * (W2^T W2) (elementwise), O(H^2) per row.

    Any other network uses reverse-mode autograd (``torch.func.jacrev`` under ``vmap``): Z
    vector-Jacobian products per row, about Z backward passes of the encoder per minibatch.
    """
    layers = list(encoder) if isinstance(encoder, nn.Sequential) else [encoder]
    kinds = [type(m) for m in layers]
    linear_first = kinds and kinds[0] is nn.Linear
    if linear_first and len(layers) == 1:
        return (layers[0].weight ** 2).sum().expand(x.shape[:-1])
    if linear_first and len(layers) in (2, 3) and kinds[1] in _SLOPES and \
            (len(layers) == 2 or kinds[2] is nn.Linear) and _default_activation(layers[1]):
        w1 = layers[0].weight  # (H, D)
        d = _SLOPES[kinds[1]](layers[0](x))  # (B, H)
        if len(layers) == 2:
            return (d**2 * (w1**2).sum(1)).sum(-1)
        w2 = layers[2].weight  # (Z, H)
        gram = (w1 @ w1.T) * (w2.T @ w2)  # (H, H)
        return ((d @ gram) * d).sum(-1)
    jac = torch.func.vmap(torch.func.jacrev(encoder))(x)  # (B, Z, D)
    return (jac**2).flatten(1).sum(-1)


def _default_activation(module):
    """The closed forms assume Softplus(beta=1, threshold=20) and ELU(alpha=1)."""
    if isinstance(module, nn.Softplus):
        return module.beta == 1
    if isinstance(module, nn.ELU):
        return module.alpha == 1
    return True


class Autoencoder(VAE):
    """A deterministic autoencoder: :class:`~pyro_vae.models.vae.VAE` with a point-mass code.

    :param prior: the code's log-density term: :class:`~pyro_vae.families.priors.Flat` (plain AE, no
        term) or :class:`~pyro_vae.families.priors.SparseLaplace` (sparse AE, ``lambda |h|_1``).
    :param posterior: a point mass, :class:`~pyro_vae.families.posteriors.Delta`.
    :param corruption: a :class:`~pyro_vae.families.noises.Noise` ``x -> x~`` applied to the encoder's
        input only (denoising AE), or None.
    :param float contraction: lambda_c of the contractive penalty (0: off).

    Example::

        >>> import pyro_vae as pv
        >>> ae = pv.Autoencoder(pv.MLP(64, [32], 3), pv.MLP(3, [32], 64), prior=pv.Flat(3),
        ...                     likelihood=pv.Bernoulli(), posterior=pv.Delta(), corruption=pv.Masking(0.3))
        >>> x = torch.bernoulli(torch.full((5, 64), 0.3))
        >>> loss = pyro.infer.Trace_ELBO().loss(ae.model, ae.guide, x)  # summed cross-entropy of masked inputs' codes
        >>> ae.corruption.spec(), ae.encode(x).shape
        ('masking:0.3', torch.Size([5, 3]))
    """

    def __init__(self, encoder, decoder, prior, likelihood, posterior, corruption=None, contraction=0.0):
        super().__init__(encoder, decoder, prior=prior, likelihood=likelihood, posterior=posterior)
        self.noise = corruption  # a submodule (or None); exposed as the declared ``corruption``
        self.contraction = check_positive("contraction", contraction) if contraction else 0.0

    @property
    def corruption(self):
        return self.noise

    def penalties(self, x):
        """The contractive AE's factor -lambda_c ||J_f(x)||_F^2 per data point (none when lambda_c = 0).

        The model is the VAE's: h ~ p(h) (flat or Laplace), x ~ p(x | g(h)) observed, then this."""
        if self.contraction:
            pyro.factor("contraction", -self.contraction * jacobian_frobenius_sq(self.encoder, x))  # (B,)

    def guide(self, x, num_data=None, kl_scale=None):
        """For each data point: x~ = corruption(x) (or x); h = f(x~); z ~ delta(h).  "z": (B, Z)."""
        x_in = self.corruption(x) if self.corruption is not None else x
        super().guide(x_in, num_data, kl_scale)


"""A mixture model with a discrete latent, the lecture's starting point ("Recall EM GMM").

Generative story, for each data point n in the plate ``"data"``::

    z_n ~ Categorical(pi)                            "z": (B,)     one of K components
    x_n ~ p(x | z_n) = likelihood(theta_{z_n})       "x": (B, D)   observed

The "decoder" is a table ``theta`` ``(K, P)`` of per-component outputs of any likelihood family: a
mixture of Bernoullis (``bernoulli``: P = D logits) for binary images, of Gaussians with learned
diagonal scales (``normal-hetero``: P = 2 D) for grey data. Because z takes K values,
``log p(x) = logsumexp_k [log pi_k + log p(x | theta_k)]`` is exact, and so is the posterior
p(z | x): the gap log p(x) - ELBO(q) = KL(q || p(z | x)) of any q is known point by point.

Two guides (``elbo='enum'`` marks their ``"z"`` for enumeration; the programs carry no flag):

- exact (no encoder): q(z | x) = p(z | x; theta), the E-step, computed by Bayes' rule and detached.
  EM (``elbo='em'``) alternates it with a closed-form M-step; SVI with ``TraceEnum_ELBO``
  (``elbo='enum'``) sums over z, so the objective is exactly log p(x) and its gradient
  E_{p(z|x)}[grad log p(x, z)] = grad log p(x) (Fisher's identity): the same value and gradient as
  enumerating z in the model with an empty guide (tested).
- amortised (an ``encoder`` x -> K logits): q(z | x) = Categorical(softmax(encoder(x))). A
  categorical draw has no reparameterisation, so ``Trace_ELBO`` (``elbo='trace'``) gives the encoder
  the score-function (REINFORCE) estimator, E_q[(log p(x, z) - log q(z | x)) grad log q(z | x)],
  Rao-Blackwellised per data point (Pyro sums the ELBO to the site's plate first) and without a
  baseline; ``TraceEnum_ELBO`` (``elbo='enum'``) enumerates the K values in the guide and takes the
  expectation exactly (no variance, K likelihood evaluations per point).

References: Dempster, Laird & Rubin (1977); Bishop (2006), ch. 9; Williams (1992) for REINFORCE.
"""

import pyro
import pyro.distributions as dist
import torch
import torch.nn as nn

from ..errors import check_int
from .base import LatentModel, data_plate, latent_scale
from .nets import layer_multiply_adds, layer_width

GUIDES = ("exact", "categorical")  # the mixture's q(z | x): Bayes' rule, or an amortised encoder
DEAD_WEIGHT = 1e-8  # a component with less total responsibility than this keeps its parameters in an M-step


class MixingWeights(nn.Module):
    """pi = softmax(logits), ``(K,)``, started uniform."""

    def __init__(self, num_components):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(num_components))

    def forward(self):
        return dist.Categorical(logits=self.logits)


class ComponentTable(nn.Module):
    """The mixture's "decoder": ``z (...) -> theta_z (..., P)``, one row of likelihood outputs per
    component (a lookup, so an enumerated ``z`` of shape ``(K, 1)`` gives ``(K, 1, P)``)."""

    def __init__(self, num_components, num_params):
        super().__init__()
        self.table = nn.Parameter(0.01 * torch.randn(num_components, num_params))  # (K, P)

    def forward(self, z):
        return self.table[z]


class MixtureModel(LatentModel):
    """A mixture of K components of a likelihood family, with a discrete latent ``"z"``.

    :param int num_components: K.
    :param likelihood: p(x | z = k) family, e.g. :class:`~pyro_vae.families.likelihoods.Bernoulli`.
    :param int data_dim: D.
    :param nn.Module encoder: ``x (B, D) -> (B, K)`` logits of an amortised q(z | x); None (default)
        for the exact posterior as guide.

    Example::

        >>> import pyro_vae as pv
        >>> mix = pv.MixtureModel(3, pv.Bernoulli(), data_dim=64)
        >>> x = torch.bernoulli(torch.full((5, 64), 0.3))
        >>> log_px = mix.log_marginal(x)                       # exact: a sum over the 3 components
        >>> elbo = pv.make_elbo("enum").loss(mix.model, mix.guide, x)  # TraceEnum_ELBO, z enumerated
        >>> log_px.shape, abs(-elbo - log_px.sum().item()) < 1e-3   # the exact guide's ELBO is log p(x)
        (torch.Size([5]), True)
    """

    discrete_latent = True

    def __init__(self, num_components, likelihood, data_dim, encoder=None):
        super().__init__()
        self.num_components = check_int("num_components", num_components)
        self.data_dim = check_int("data_dim", data_dim)
        self.likelihood = likelihood
        self.weights = MixingWeights(num_components)
        self.decoder = ComponentTable(num_components, likelihood.num_params(data_dim))
        self.encoder = encoder
        self.posterior = None  # no continuous posterior family: q(z | x) is categorical
        self._bind_programs("mixture")

    @property
    def amortized(self):
        """True when q(z | x) comes from an encoder; False for the exact posterior."""
        return self.encoder is not None

    def model(self, x, num_data=None, kl_scale=None):
        """z_n ~ Categorical(pi); x_n ~ likelihood(theta_{z_n}) (observed), per data point.

        :param kl_scale: weight of the latent site in model and guide (as the VAE's); None: 1.
        """
        self._register("weights", "decoder", "likelihood")
        with data_plate(x, num_data):
            with latent_scale(kl_scale):
                z = pyro.sample("z", self.weights())  # (B,); (K, 1) when enumerated
            pyro.sample("x", self.likelihood(self.decoder(z), event_dim=x.dim() - 1), obs=x)

    def guide(self, x, num_data=None, kl_scale=None):
        """z_n ~ q(z | x_n): the exact posterior p(z | x_n) (detached), or Categorical(encoder(x_n))."""
        if self.amortized:
            self._register("encoder")
        with data_plate(x, num_data), latent_scale(kl_scale):
            pyro.sample("z", self.posterior_at(x))  # (B,); (K, 1) when enumerated

    def posterior_at(self, x):
        """q(z | x) as a Categorical with batch shape ``(B,)``."""
        return dist.Categorical(logits=self.guide_table(x))

    # --- exact sums over z ----------------------------------------------------------------------

    def latent_log_prior(self):
        """``log pi_k``, ``(K,)``."""
        return torch.log_softmax(self.weights.logits, -1)

    def activation_width(self):
        """Per data row, an enumerated or exact step scores it under every component: K x (P + 1)
        values (P likelihood parameters per component), plus an amortised encoder's layers."""
        table = self.decoder.table
        return table.shape[0] * (table.shape[1] + 1) + (0 if self.encoder is None else layer_width(self.encoder))

    def multiply_adds(self):
        """Per data row, one pass over the K x P table, plus an amortised encoder's layers."""
        return self.decoder.table.numel() + (0 if self.encoder is None else layer_multiply_adds(self.encoder))

    def log_joint_table(self, x):
        """``log p(x_n, z = k)``, ``(B, K)``."""
        return self.latent_log_prior() + self.likelihood.pairwise_log_prob(self.decoder.table, x)

    def guide_table(self, x):
        """``log q(z = k | x_n)``, ``(B, K)``."""
        if self.amortized:
            return torch.log_softmax(self.encoder(x), -1)
        return torch.log_softmax(self.log_joint_table(x).detach(), -1)

    def log_marginal(self, x):
        """Exact ``log p(x_n) = logsumexp_k log p(x_n, z = k)``, ``(B,)``."""
        return torch.logsumexp(self.log_joint_table(x), -1)

    # --- EM ---------------------------------------------------------------------------------------

    @property
    def supports_em(self):
        return not self.amortized and self.likelihood.closed_form_m_step

    @property
    def default_elbo(self):
        """``em`` where EM applies, else ``enum`` (exact sums over z in the guide)."""
        return "em" if self.supports_em else "enum"

    @torch.no_grad()
    def m_step(self, x, responsibilities, smoothing=0.0):
        """Set pi and theta to maximise ``sum_n sum_k r_nk log p(x_n, z = k)`` (EM's M-step).

        :param x: ``(N, D)``.
        :param responsibilities: ``(N, K)``, rows summing to 1 (the E-step).
        :param float smoothing: pseudo-count: each component also sees the data mean with this
            weight (a conjugate-style prior; 0 is maximum likelihood). pi is never smoothed.
        """
        total = responsibilities.sum(0)  # (K,)
        alive = total > DEAD_WEIGHT
        x_fit, w_fit = x, responsibilities
        if smoothing:
            x_fit = torch.cat([x, x.mean(0, keepdim=True)])
            w_fit = torch.cat([responsibilities, responsibilities.new_full((1, self.num_components), smoothing)])
        table = self.likelihood.m_step(x_fit, w_fit).to(self.decoder.table.dtype)  # (K, P)
        self.decoder.table.copy_(torch.where(alive[:, None], table, self.decoder.table))
        self.weights.logits.copy_(torch.log(total.clamp_min(DEAD_WEIGHT) / total.sum()))

    @torch.no_grad()
    def init_from_data(self, x):
        """Start each component halfway between a random row of ``x`` and the mean of all rows (a
        weighted M-step), pi uniform; the rows are drawn from torch's global stream. A likelihood
        without a closed-form M-step keeps its small random start."""
        if not self.likelihood.closed_form_m_step:
            return
        n = x.shape[0]
        pick = torch.randperm(n)[: self.num_components] if n >= self.num_components else \
            torch.randint(0, n, (self.num_components,))
        weights = x.new_full((n, self.num_components), 1.0 / n)
        weights[pick, torch.arange(self.num_components)] += 1.0
        self.decoder.table.copy_(self.likelihood.m_step(x, weights).to(self.decoder.table.dtype))
        self.weights.logits.zero_()

    # --- what the figures and reports use ------------------------------------------------------

    def component_means(self):
        """Means of p(x | z = k), ``(K, D)``."""
        return self.likelihood.mean(self.decoder.table)

    @torch.no_grad()
    def encode(self, x):
        """E_q[one_hot(z) | x] = q(z | x) as probabilities, ``(B, K)``."""
        return self.guide_table(x).exp()

    @torch.no_grad()
    def decode(self, z):
        """Mean of x under a (soft) code: ``z (..., K) @ component_means()``, ``(..., D)``; a one-hot
        z gives that component's mean, q(z | x) the posterior-weighted mean."""
        return z @ self.component_means()

    @torch.no_grad()
    def sample(self, num_samples):
        """Means of p(x | z) for z ~ Categorical(pi): ``(num_samples, D)``."""
        return self.component_means()[self.weights().sample((num_samples,))]

"""Priors p(z): modules whose ``forward()`` returns a distribution with event shape ``(z_dim,)``.

A prior's batch shape is ``()``; the model's ``"data"`` plate broadcasts it over the minibatch (and
a vectorised particle plate over ``(P, B)``). Priors are only scored (``log_prob``) and sampled
without gradients (``vae.sample``): none needs ``rsample``. Learnable parameters are
``nn.Parameter``s of the module, which the model registers with Pyro so SVI trains them.

Every prior derives from :class:`Prior`, which declares what callers may ask of it with a default:
``bind(model)`` (a hook the model calls once at construction; the VampPrior takes the encoder and
the posterior family from it) and ``components()`` (a Gaussian mixture's parts, for figures).
"""

import math  # noqa: F401 (the Example:: doctests use it)

import pyro.distributions as dist
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError, check_int, check_positive
from ..specs import Registry

REGISTRY = Registry("prior")  # spec names of the priors, registered by @REGISTRY.register below


class Prior(nn.Module):
    """Base class of the priors: ``forward()`` returns p(z), event shape ``(z_dim,)``, batch ``()``.

    :param int z_dim: Z, the dimension of the latent the prior is over.
    """

    def __init__(self, z_dim):
        super().__init__()
        self.z_dim = check_int("z_dim", z_dim)

    def bind(self, model):
        """Called once by the model that owns this prior, at its construction. Default: nothing.

        A prior built from the model's parts (the :class:`VampPrior`) overrides it and raises a
        :class:`~pyro_vae.errors.UserError` for a model it cannot work with.
        """

    def spec(self):
        """The spec that builds this prior (``mog:10``); the class name for one that has none."""
        return REGISTRY.spec_of(self) or type(self).__name__

    def components(self):
        """A Gaussian mixture's parts ``{"loc": (K, Z), "scale": (K, Z), "weights": (K,)}``
        (detached), or None for a prior that is not one. Figures draw them over the codes."""
        return None


@REGISTRY.register("normal", "standard normal N(0, I)", build=lambda cls, _, ctx: cls(ctx.z_dim))
class StandardNormal(Prior):
    """p(z) = N(z; 0, I), with ``event_shape == (z_dim,)``.

    Example::

        >>> p = StandardNormal(3)()
        >>> p.event_shape, p.batch_shape, round(p.log_prob(torch.zeros(3)).item(), 4)  # -3/2 log(2 pi)
        (torch.Size([3]), torch.Size([]), -2.7568)
    """

    def __init__(self, z_dim):
        super().__init__(z_dim)
        self.register_buffer("loc", torch.zeros(z_dim))
        self.register_buffer("scale", torch.ones(z_dim))

    def forward(self):
        return dist.Normal(self.loc, self.scale).to_event(1)


@REGISTRY.register("mog", "mixture of K Gaussians, weights, means and scales learned", arg="K", cast=int,
                   attr="num_components", example=3, build=lambda cls, k, ctx: cls(ctx.z_dim, k))
class MixtureOfGaussians(Prior):
    """p(z) = sum_k pi_k N(z; mu_k, diag sigma_k^2), all of pi, mu, sigma learned.

    The Gaussian-mixture latent model (e.g. Dilokthanakul et al. 2016; Jiang et al. 2017 for a
    VAE with a GMM prior). Parameters: ``logits`` (K,) with ``pi = softmax(logits)``, ``loc``
    (K, Z) and ``log_scale`` (K, Z) with ``sigma = exp(log_scale)``. Initialised with equal
    weights, unit scales and means drawn from N(0, I), so the components start apart.
    No analytic KL(q || p) exists for a mixture: ``meanfield`` samples this term.

    :param int z_dim: Z.
    :param int num_components: K.

    Example::

        >>> prior = MixtureOfGaussians(2, num_components=10)
        >>> prior().sample((5,)).shape, prior.components()["loc"].shape
        (torch.Size([5, 2]), torch.Size([10, 2]))
    """

    def __init__(self, z_dim, num_components):
        super().__init__(z_dim)
        self.num_components = check_int("num_components", num_components)
        self.logits = nn.Parameter(torch.zeros(num_components))  # (K,)
        self.loc = nn.Parameter(torch.randn(num_components, z_dim))  # (K, Z)
        self.log_scale = nn.Parameter(torch.zeros(num_components, z_dim))  # (K, Z)

    def forward(self):
        components = dist.Normal(self.loc, self.log_scale.exp()).to_event(1)  # batch (K,), event (Z,)
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits), components)

    def components(self):
        return {"loc": self.loc.detach(), "scale": self.log_scale.detach().exp(),
                "weights": torch.softmax(self.logits.detach(), 0)}


@REGISTRY.register("vamp", "VampPrior: mixture of q(z|u_k) at K learned pseudo-inputs", arg="K", cast=int,
                   attr="num_components", example=3, build=lambda cls, k, ctx: cls(ctx.z_dim, k, ctx.data_dim))
class VampPrior(Prior):
    """VampPrior (Tomczak & Welling 2018): p(z) = (1/K) sum_k q(z | u_k), K learned pseudo-inputs.

    The prior is the model's own posterior family evaluated at K pseudo-inputs ``u_k`` in data
    space, ``u = hardtanh(pseudo_inputs, 0, 1)`` (as the authors' code keeps them in the data's
    range). Only the pseudo-inputs belong to this module; the encoder and the posterior family are
    the model's, bound by :meth:`bind` (not registered here, so they are neither duplicated in the
    ``state_dict`` nor registered twice with Pyro). The encoder therefore receives gradient from
    the prior term too, as in the paper.

    :param int z_dim: Z.
    :param int num_components: K.
    :param int data_dim: D of the pseudo-inputs.

    Example::

        >>> from pyro_vae import VAE, MLP, DiagonalNormal
        >>> prior = VampPrior(2, num_components=50, data_dim=64)
        >>> vae = VAE(MLP(64, [32], 4), MLP(2, [32], 64), prior=prior, posterior=DiagonalNormal())
        >>> prior().batch_shape, prior().event_shape, prior.pseudo_data().shape
        (torch.Size([]), torch.Size([2]), torch.Size([50, 64]))
    """

    def __init__(self, z_dim, num_components, data_dim):
        super().__init__(z_dim)
        self.num_components = check_int("num_components", num_components)
        check_int("data_dim", data_dim)
        # Near-grey images, 0.5 +- 0.05: inside hardtanh's linear range, so every pixel gets gradient.
        self.pseudo_inputs = nn.Parameter(0.5 + 0.05 * torch.randn(num_components, data_dim))  # (K, D)
        self.register_buffer("logits", torch.zeros(num_components))  # uniform mixture weights
        self._posterior_at = None

    def bind(self, model):
        """Use ``model.posterior_at(x) -> q(z | x)`` (a distribution, batch (B,), event (Z,)).

        Refuses a model without q(z | x) for the latent this prior is over
        (``model.amortizes_prior_latent`` is False), a point-mass posterior (``model.point_mass``) and
        one that scores foreign points only at great cost (``model.cheap_posterior_density`` False).
        """
        if not model.amortizes_prior_latent:
            raise UserError(f"vamp:{self.num_components} is a mixture of q(z | u_k), but "
                            f"{type(model).__name__} has no q(z | x) for the latent it is the prior of; "
                            "use the one-layer VAE, or the normal or mog:K prior")
        if model.point_mass:
            raise UserError(f"vamp:{self.num_components} is a mixture of q(z | u_k) and the "
                            f"{type(model.posterior).__name__.lower()} posterior has no density; "
                            "use the diag, lowrank:R, full or iaf-shared:N posterior")
        if not model.cheap_posterior_density:
            raise UserError(f"vamp:{self.num_components} scores every z under q(z | u_k) at each pseudo-input; the "
                            f"{type(model.posterior).__name__} posterior conditions its flow on the encoder, so that "
                            "needs the flow's inverse (Z sequential passes) for every (data point, pseudo-input) pair; "
                            "use iaf-shared:N (one flow for all points) or the diag, lowrank:R or full posterior")
        object.__setattr__(self, "_posterior_at", model.posterior_at)  # a plain reference, not a submodule

    def pseudo_data(self):
        """The pseudo-inputs in data space, ``(K, D)``."""
        return F.hardtanh(self.pseudo_inputs, 0.0, 1.0)

    def forward(self):
        if self._posterior_at is None:
            raise RuntimeError("VampPrior is not bound to a model: pass it to VAE(prior=...)")
        components = self._posterior_at(self.pseudo_data())  # batch (K,), event (Z,)
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits), components)


class Flat(Prior):
    """An improper flat density on the code, log p(h) = 0: the plain autoencoder has no code term.

    Only meaningful with a point-mass posterior (an autoencoder); never sampled.

    Example::

        >>> Flat(3)().log_prob(torch.randn(4, 3))
        tensor([0., 0., 0., 0.])
    """

    def forward(self):
        return dist.ImproperUniform(dist.constraints.real, (), (self.z_dim,))


class SparseLaplace(Prior):
    """p(h) = prod_j Laplace(h_j; 0, 1/lambda), the sparse autoencoder's code term.

    ``-log p(h) = lambda |h|_1 - Z log(lambda / 2)``: the L1 penalty ``lambda |h|_1`` of a sparse
    autoencoder (Goodfellow et al. 2016, 14.2.1) plus a constant that does not move the optimum.

    Example::

        >>> h = torch.tensor([1.0, -2.0, 0.0])
        >>> -SparseLaplace(3, sparsity=0.5)().log_prob(h) - 0.5 * h.abs().sum() + 3 * math.log(0.25)
        tensor(0.)
    """

    def __init__(self, z_dim, sparsity):
        super().__init__(z_dim)
        self.sparsity = check_positive("sparsity", sparsity)
        self.register_buffer("loc", torch.zeros(z_dim))
        self.register_buffer("scale", torch.full((z_dim,), 1.0 / self.sparsity))

    def forward(self):
        return dist.Laplace(self.loc, self.scale).to_event(1)

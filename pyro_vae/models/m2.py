"""The semi-supervised VAE "M2" of Kingma, Rezende, Mohamed & Welling (2014), as Pyro programs.

Generative story, for each data point n in the plate ``"data"``::

    y_n ~ Cat(pi)                                   "y": (B,)     the class; observed when labelled
    z_n ~ p(z)                                      "z": (B, Z)   style, independent of y a priori
    x_n ~ p(x | y_n, z_n) = likelihood(decoder(z_n, one_hot(y_n)))     "x": (B, D)   observed

Inference model (the guide)::

    y_n ~ q(y | x_n) = Cat(softmax(classifier(x_n)))          only where y_n is not observed
    z_n ~ q(z | x_n, y_n) = posterior(encoder(x_n, one_hot(y_n)))

For a labelled point the ELBO is L(x, y) = E_q(z|x,y)[log p(x, y, z) - log q(z | x, y)] <= log p(x, y).
For an unlabelled one, U(x) = sum_y q(y | x) [L(x, y) - log q(y | x)] <= log p(x): the label is summed
out exactly (``TraceEnum_ELBO`` enumerates the guide's ``"y"`` in parallel, one z per label), so the
classifier's gradient is exact, not a score-function estimate. The classifier q(y | x) is also trained
directly on the labelled points (Kingma et al., eq. 9):

    J^alpha = sum_labelled L(x, y) + sum_unlabelled U(x) + alpha * E_labelled[log q(y | x)],
    alpha = 0.1 N by default (N: all training points).

Evaluation pairs that score with the project's bounds unchanged (sites in the ``"data"`` plate):

- :meth:`joint_model` / :meth:`joint_guide` on rows ``[x, one_hot(y)]``: log p(x, y) of labelled points;
- :meth:`marginal_model` / :meth:`marginal_guide` on images: log p(x) with y summed exactly inside each
  importance weight: p(x, z) = p(z) sum_y pi_y p(x | y, z) (z and y are independent a priori) and the
  proposal q(z | x) = sum_y q(y | x) q(z | x, y), a mixture over the C labels.

Reference: Kingma, Rezende, Mohamed & Welling (2014), Semi-supervised learning with deep generative
models, NeurIPS; Pyro's ``examples/vae/ss_vae_M2.py``.
"""

import pyro
import pyro.distributions as dist
import torch
import torch.nn as nn

from ..errors import check_int
from ..families.likelihoods import Bernoulli
from ..families.posteriors import DiagonalNormal
from ..families.priors import StandardNormal
from ..labels import one_hot, unpack
from .base import LatentModel, data_plate, latent_scale
from .nets import layer_multiply_adds, layer_width


class UniformLabels(nn.Module):
    """p(y) = Cat(pi), pi = 1 / C for every class (fixed, as in the paper)."""

    def __init__(self, num_classes):
        super().__init__()
        self.register_buffer("logits", torch.zeros(check_int("num_classes", num_classes)))

    def forward(self):
        return dist.Categorical(logits=self.logits)


class SemiSupervisedVAE(LatentModel):
    """M2: a class label y and a continuous code z generate x; q(y | x) is the classifier.

    :param nn.Module classifier: ``x (..., D) -> (..., C)`` logits of q(y | x).
    :param nn.Module encoder: ``(x (..., D), one_hot(y) (..., C)) -> (..., posterior.num_params(Z))``,
        e.g. :class:`~pyro_vae.models.nets.ConditionalMLP` (it broadcasts x against the enumerated labels).
    :param nn.Module decoder: ``(z (..., Z), one_hot(y) (..., C)) -> (..., likelihood.num_params(D))``.
    :param int num_classes: C.
    :param prior: p(z) (default standard normal of ``z_dim``).
    :param likelihood: p(x | y, z) family (default Bernoulli).
    :param posterior: q(z | x, y) family (default diagonal normal).
    :param int z_dim: Z when no prior is given.

    Example::

        >>> import pyro_vae as pv
        >>> lik, post = pv.Bernoulli(), pv.DiagonalNormal()
        >>> m2 = pv.SemiSupervisedVAE(pv.MLP(64, [32], 10), pv.ConditionalMLP(64, 10, [32], post.num_params(2)),
        ...                           pv.ConditionalMLP(2, 10, [32], lik.num_params(64)), num_classes=10, z_dim=2)
        >>> x, y = torch.bernoulli(torch.full((5, 64), 0.3)), torch.tensor([0, 1, 2, 3, 4])
        >>> unlabelled = pv.make_elbo("enum").loss(m2.model, m2.guide, x)  # -sum U(x): y summed out exactly
        >>> labelled = pv.make_elbo("trace").loss(m2.model, m2.guide, x, y)  # -sum L(x, y)
        >>> m2.classify(x).shape, m2.log_classifier(x, y).shape  # predicted labels, log q(y | x)
        (torch.Size([5]), torch.Size([5]))
    """

    #: The guide samples y then z, as the model does; y is discrete: train with ``enum`` (exact sum)
    mean_field_guide = True
    default_elbo = "enum"
    classifies = True  # evaluation reports test error and log p(x, y) beside log p(x)
    samples_per_class = True

    def __init__(self, classifier, encoder, decoder, num_classes, prior=None, likelihood=None, posterior=None,
                 z_dim=None):
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes)
        self.classifier, self.encoder, self.decoder = classifier, encoder, decoder
        self.prior = prior if prior is not None else StandardNormal(check_int("z_dim", z_dim))
        self.likelihood = likelihood if likelihood is not None else Bernoulli()
        self.posterior = posterior if posterior is not None else DiagonalNormal()
        self.label_prior = UniformLabels(num_classes)
        self._bind_prior()
        self._bind_programs("m2")
        self.joint_model, self.joint_guide = self.joint_model, self.joint_guide
        self.marginal_model, self.marginal_guide = self.marginal_model, self.marginal_guide

    @property
    def z_dim(self):
        return self.prior.z_dim

    def _code(self, y):
        return one_hot(y, self.num_classes, self.label_prior.logits.dtype)  # (..., C)

    # --- the training pair: y observed (labelled) or enumerated (unlabelled) -----------------------

    def model(self, x, y=None, num_data=None, kl_scale=None):
        """y ~ Cat(pi) (observed when given); z ~ p(z); x ~ p(x | y, z) (observed), per data point.

        :param x: ``(B, D)`` images.
        :param y: ``(B,)`` labels, or None (the guide's y, enumerated).
        :param num_data: N of the set the minibatch is drawn from (scales by N / B).
        :param kl_scale: weight of the ``"z"`` site in model and guide; None: 1.
        """
        self._register("decoder", "prior", "likelihood")
        with data_plate(x, num_data):
            y = pyro.sample("y", self.label_prior(), obs=y)  # (B,); (C, 1) when enumerated
            with latent_scale(kl_scale):
                z = pyro.sample("z", self.prior())  # (B, Z); (C, B, Z) when y is enumerated
            out = self.decoder(z, self._code(y))  # (B, P) or (C, B, P)
            pyro.sample("x", self.likelihood(out, event_dim=1), obs=x)

    def guide(self, x, y=None, num_data=None, kl_scale=None):
        """y ~ q(y | x) where y is not given; z ~ q(z | x, y), per data point."""
        self._register("classifier", "encoder", "posterior")
        with data_plate(x, num_data):
            if y is None:
                y = pyro.sample("y", self.label_posterior(x))  # (B,); (C, 1) when enumerated
            with latent_scale(kl_scale):
                pyro.sample("z", self.posterior(self.encoder(x, self._code(y))))  # (B, Z) or (C, B, Z)

    def label_posterior(self, x):
        """q(y | x) = Cat(softmax(classifier(x))), batch ``(B,)``."""
        return dist.Categorical(logits=self.classifier(x))

    def log_classifier(self, x, y):
        """``log q(y | x)`` of given labels, ``(B,)``: the classification term of J^alpha."""
        return self.label_posterior(x).log_prob(y)

    @torch.no_grad()
    def classify(self, x):
        """The most probable label under q(y | x), ``(B,)``."""
        return self.classifier(x).argmax(-1)

    # --- evaluation pairs ------------------------------------------------------------------------

    def activation_width(self):
        """The classifier once, the encoder and decoder once per label: y is summed out (enumerated)
        in training and inside every importance weight of the bounds."""
        return layer_width(self.classifier) + self.num_classes * (layer_width(self.encoder) + layer_width(self.decoder))

    def multiply_adds(self):
        """As :meth:`activation_width`: one classifier pass, an encoder and a decoder pass per label."""
        return layer_multiply_adds(self.classifier) + self.num_classes * (
            layer_multiply_adds(self.encoder) + layer_multiply_adds(self.decoder))

    def scored_programs(self):
        """The marginal pair: bounds on log p(x) with y summed exactly inside each weight."""
        return self.marginal_model, self.marginal_guide

    def enumerated_terms(self, x):
        """The unlabelled ELBO U(x) of each row and its two terms, ``(B,)`` each, with y summed
        exactly and one z per label: ``reconstruction`` = sum_y q(y|x) log p(x | y, z_y), ``kl`` = the
        one-draw KL(q(y, z | x) || p(y) p(z)), ``elbo`` = reconstruction - kl."""
        log_q_y = torch.log_softmax(self.classifier(x), -1).T  # (C, B)
        q = self.posterior(self.encoder(x, self._labels().unsqueeze(-2)))  # batch (C, B), event (Z,)
        z = q.rsample()  # (C, B, Z)
        out = self.decoder(z, self._labels().unsqueeze(-2))  # (C, B, P)
        log_px = self.likelihood(out, event_dim=1).log_prob(x)  # (C, B)
        log_prior_y = self.label_prior().logits.log_softmax(-1)[:, None]  # (C, 1)
        log_ratio = q.log_prob(z) - self.prior().log_prob(z) + log_q_y - log_prior_y  # (C, B)
        weights = log_q_y.exp()
        reconstruction, kl = (weights * log_px).sum(0), (weights * log_ratio).sum(0)
        return {"elbo": reconstruction - kl, "reconstruction": reconstruction, "kl": kl}

    def joint_model(self, rows):
        """The model of rows ``[x, one_hot(y)]`` ``(B, D + C)``, y observed: bounds on log p(x, y)."""
        x, code = unpack(rows, self.num_classes)
        self.model(x, code.argmax(-1))

    def joint_guide(self, rows):
        """z ~ q(z | x, y) for rows ``[x, one_hot(y)]``."""
        x, code = unpack(rows, self.num_classes)
        self.guide(x, code.argmax(-1))

    def marginal_model(self, x):
        """z ~ p(z); x ~ sum_y pi_y p(x | y, z) (observed): y summed exactly, per data point."""
        self._register("decoder", "prior", "likelihood")
        with data_plate(x):
            z = pyro.sample("z", self.prior())  # (..., B, Z)
            out = self.decoder(z.unsqueeze(-2), self._labels())  # (..., B, C, P): every label
            components = self.likelihood(out, event_dim=1)  # batch (..., B, C), event (D,)
            mixing = dist.Categorical(logits=self.label_prior.logits.expand(components.batch_shape))
            pyro.sample("x", dist.MixtureSameFamily(mixing, components), obs=x)

    def marginal_guide(self, x):
        """z ~ q(z | x) = sum_y q(y | x) q(z | x, y): the guide with y summed out, per data point."""
        self._register("classifier", "encoder", "posterior")
        with data_plate(x):
            components = self.posterior(self.encoder(x.unsqueeze(-2), self._labels()))  # batch (B, C), event (Z,)
            mixing = dist.Categorical(logits=self.classifier(x))  # (B, C)
            pyro.sample("z", dist.MixtureSameFamily(mixing, components))  # (B, Z)

    def _labels(self):
        return torch.eye(self.num_classes, dtype=self.label_prior.logits.dtype,
                         device=self.label_prior.logits.device)  # (C, C): one row per label

    # --- what figures use --------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, x):
        """E_q[z | x, y = most probable label], ``(B, Z)``."""
        return self.posterior.mean(self.encoder(x, self._code(self.classify(x))))

    @torch.no_grad()
    def reconstruct(self, x):
        """Mean of p(x | y, z) at y = the classifier's label and z = E_q[z | x, y], ``(B, D)``."""
        y = self.classify(x)
        return self.likelihood.mean(self.decoder(self.posterior.mean(self.encoder(x, self._code(y))), self._code(y)))

    @torch.no_grad()
    def decode(self, z, y=None):
        """Mean of p(x | y, z), ``(..., D)``; labels ``y`` ``(...)`` (default: class 0)."""
        y = torch.zeros(z.shape[:-1], dtype=torch.long, device=z.device) if y is None else y
        return self.likelihood.mean(self.decoder(z, self._code(y)))

    @torch.no_grad()
    def sample(self, num_samples, y=None):
        """Means of p(x | y, z) for z ~ p(z) and y ~ p(y) (or the given labels ``(num_samples,)``)."""
        if y is None:
            y = self.label_prior().sample((num_samples,))
        return self.decode(self.prior().sample((num_samples,)), y)

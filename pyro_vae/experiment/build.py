"""Build data, model, objective and ``fit``'s options from a :class:`~pyro_vae.experiment.config.TrainConfig`."""

import dataclasses
import functools
import inspect
import os

import torch

from .. import specs
from ..data import load_dataset
from ..errors import UserError
from ..families import likelihoods, noises, posteriors, priors
from ..inference.objectives import check_model, make_elbo
from ..inference.train import fit
from ..models import MLP, VAE, Autoencoder, HierarchicalVAE, MixtureModel
from ..models.mixture import GUIDES
from ..models.nets import ConvDecoder, ConvEncoder
from .config import TrainConfig, keep_epochs  # noqa: F401 (keep_epochs: its old home)

MODELS = specs.Registry("model")  # model builders (config, data_dim, image_shape) -> model, by spec name


def model(name, help, **options):
    """Register a builder ``(config, data_dim, image_shape=None) -> model`` under ``name``."""
    options.setdefault("build", lambda builder, _, ctx: builder)
    return MODELS.register(name, help, **options)


class DataBuilder:
    """A model builder that reads the data set (its labels, its picture shape), not only its width:
    what a builder registered with ``build=lambda fn, value, ctx: DataBuilder(...)`` gives.

    :param build: ``(config, data) -> model``, given the prepared data.
    :param prepare: ``(data, config) -> data``: checks, and the view the model trains and is scored on.
    """

    def __init__(self, build, prepare):
        self.build, self.prepare = build, prepare


def build_data(config, base=None):
    """The config's data set, as its model reads it (a labelled view for ``cvae``; checked labels or
    picture shape for the models that need them: one-line errors before anything is written). A
    relative ``npz:PATH`` is read relative to ``base`` (a run directory) when given."""
    data = load_dataset(resolve_dataset(config.dataset, base), data_dir=config.data_dir, binarize=config.binarize,
                        download=config.download)
    builder = MODELS.build(config.model)
    return builder.prepare(data, config) if isinstance(builder, DataBuilder) else data


def resolve_dataset(spec, base=None):
    """``spec`` with a relative ``npz:PATH`` joined to the folder ``base`` (unchanged without it).

    Example::

        >>> resolve_dataset("npz:../../data/x.npz", "runs/r"), resolve_dataset("npz:/d/x.npz", "runs/r")
        ('npz:data/x.npz', 'npz:/d/x.npz')
    """
    if base is None or not spec.startswith("npz:") or os.path.isabs(spec[4:]):
        return spec
    return "npz:" + os.path.normpath(os.path.join(base, spec[4:]))  # normalised: base need not exist yet


def relative_dataset(spec, base):
    """``spec`` as a run directory ``base`` stores it: a relative ``npz:PATH`` (relative to the
    working directory) rewritten relative to ``base``, so the run reads it from any working
    directory and can move together with its data.

    Example::

        >>> relative_dataset("npz:data/x.npz", "runs/r"), relative_dataset("mnist", "runs/r")
        ('npz:../../data/x.npz', 'mnist')
    """
    if not spec.startswith("npz:") or os.path.isabs(spec[4:]):
        return spec
    return "npz:" + os.path.relpath(os.path.abspath(spec[4:]), os.path.abspath(base))


def encoder_net(config, data_dim, image_shape, out_dim):
    """The network from the data to ``out_dim`` numbers: an ``MLP`` through ``config.hidden``, or for
    ``arch="conv"`` a :class:`~pyro_vae.models.nets.ConvEncoder` (``channels``, then ``hidden``)."""
    if config.arch == "conv":
        return ConvEncoder(image_shape or (data_dim,), config.channels, config.hidden, out_dim, config.activation)
    return MLP(data_dim, list(config.hidden), out_dim, config.activation)


def decoder_net(config, in_dim, data_dim, image_shape, out_dim):
    """The network from ``in_dim`` numbers to the likelihood's ``out_dim`` parameters: the mirror of
    :func:`encoder_net` (``hidden`` and ``channels`` reversed)."""
    if config.arch == "conv":
        return ConvDecoder(in_dim, list(config.hidden)[::-1], list(config.channels)[::-1], image_shape or (data_dim,),
                           out_dim, config.activation)
    return MLP(in_dim, list(config.hidden)[::-1], out_dim, config.activation)


@model("vae", "VAE with one stochastic layer")
def build_vae(config, data_dim, image_shape=None):
    """A VAE with the prior, likelihood, posterior and networks (``arch``) the config names;
    ``image_shape`` (the data set's) shapes convolutional networks."""
    ctx = specs.Context(z_dim=config.latent_dim, data_dim=data_dim)
    prior = priors.REGISTRY.build(config.prior, ctx)
    likelihood = likelihoods.REGISTRY.build(config.likelihood, ctx)
    posterior = posteriors.REGISTRY.build(config.posterior, ctx)
    encoder = encoder_net(config, data_dim, image_shape, posterior.num_params(config.latent_dim))
    decoder = decoder_net(config, config.latent_dim, data_dim, image_shape, likelihood.num_params(data_dim))
    return VAE(encoder, decoder, prior=prior, likelihood=likelihood, posterior=posterior)


@model("vae2", "two stochastic layers z1 -> z2 -> x (Burda et al. 2016)")
def build_vae2(config, data_dim, image_shape=None):
    """Two stochastic layers (z1 -> z2 -> x): Z2 = ``latent_dim``, Z1 = Z2 // 2 (Burda et al.: 100, 50).

    The nets between x and z2 have the ``hidden`` sizes (``arch="conv"``: convolutions first); those
    between z2 and z1 are MLPs of half of them.
    """
    z2, z1 = config.latent_dim, max(1, config.latent_dim // 2)
    prior = priors.REGISTRY.build(config.prior, specs.Context(z_dim=z1, data_dim=data_dim))
    ctx = specs.Context(z_dim=z2, data_dim=data_dim)
    likelihood = likelihoods.REGISTRY.build(config.likelihood, ctx)
    posterior = posteriors.REGISTRY.build(config.posterior, ctx)
    hidden, act = list(config.hidden), config.activation
    small = [max(1, h // 2) for h in hidden]
    return HierarchicalVAE(
        encoder=encoder_net(config, data_dim, image_shape, posterior.num_params(z2)),
        decoder=decoder_net(config, z2, data_dim, image_shape, likelihood.num_params(data_dim)),
        top_encoder=MLP(z2, small, 2 * z1, act), top_decoder=MLP(z1, small[::-1], 2 * z2, act),
        prior=prior, likelihood=likelihood, posterior=posterior, z_dim=z2)


@model("ae", "undercomplete autoencoder: point-mass code, flat code prior")
def build_autoencoder(config, data_dim, prior=None, corruption=None, contraction=0.0, image_shape=None):
    """A deterministic autoencoder: point-mass code, the config's likelihood and MLPs, and the given
    code prior (default flat), encoder-input corruption and contraction weight."""
    if config.prior != "normal" or config.posterior != "diag":
        raise UserError(f"model={config.model!r} fixes its code term and point-mass code; "
                        "drop `prior` and `posterior` (use `sparsity`, `noise`, `contraction`)",
                        param=("model", "prior", "posterior", "sparsity", "noise", "contraction"))
    ctx = specs.Context(z_dim=config.latent_dim, data_dim=data_dim)
    likelihood = likelihoods.REGISTRY.build(config.likelihood, ctx)
    posterior = posteriors.Delta()
    return Autoencoder(encoder_net(config, data_dim, image_shape, posterior.num_params(config.latent_dim)),
                       decoder_net(config, config.latent_dim, data_dim, image_shape, likelihood.num_params(data_dim)),
                       prior=prior or priors.Flat(config.latent_dim), likelihood=likelihood,
                       posterior=posterior, corruption=corruption, contraction=contraction)


@model("sparse-ae", "sparse autoencoder: Laplace code prior = sparsity * |h|_1")
def _sparse_ae(config, data_dim, image_shape=None):
    return build_autoencoder(config, data_dim, prior=priors.SparseLaplace(config.latent_dim, config.sparsity),
                             image_shape=image_shape)


@model("denoising-ae", "denoising autoencoder: the encoder sees x corrupted by noise")
def _denoising_ae(config, data_dim, image_shape=None):
    return build_autoencoder(config, data_dim, corruption=build_noise(config.noise, data_dim), image_shape=image_shape)


@model("contractive-ae", "contractive autoencoder: contraction * ||J_f(x)||_F^2")
def _contractive_ae(config, data_dim, image_shape=None):
    return build_autoencoder(config, data_dim, contraction=config.contraction, image_shape=image_shape)


@model("mixture", "mixture of K components of the likelihood family, discrete z; posterior exact (default) or "
       "categorical; trained by elbo em (default), enum or trace", arg="K", cast=int, example=3,
       build=lambda builder, k, ctx: functools.partial(builder, num_components=k))
def build_mixture(config, data_dim, num_components, image_shape=None):
    """A mixture of ``num_components`` components of the ``likelihood`` family; ``posterior="exact"``
    (the default) guides with the exact posterior, ``"categorical"`` with an MLP encoder of ``hidden``."""
    if config.prior != "normal":
        raise UserError(f"model='mixture:{num_components}' learns its own mixing weights as p(z); drop `prior`",
                        param=("model", "prior"))
    if config.posterior == TrainConfig.posterior:  # the VAE default: the mixture's default guide
        config.posterior = GUIDES[0]
    if config.posterior not in GUIDES:
        raise UserError(f"model='mixture:{num_components}' has a discrete latent; use posterior='exact' (Bayes' rule, "
                        f"the default) or posterior='categorical' (an amortised encoder), not {config.posterior!r}",
                        param=("model", "posterior"))
    ctx = specs.Context(z_dim=num_components, data_dim=data_dim)
    likelihood = likelihoods.REGISTRY.build(config.likelihood, ctx)
    if config.arch != "mlp" and config.posterior != "categorical":
        raise UserError(f"model='mixture:{num_components}' with posterior={config.posterior!r} has no network; "
                        "drop `arch` (or use posterior='categorical', whose encoder it shapes)",
                        param=("model", "posterior", "arch"))
    encoder = encoder_net(config, data_dim, image_shape, num_components) \
        if config.posterior == "categorical" else None
    return MixtureModel(num_components, likelihood, data_dim, encoder=encoder)


def build_noise(spec, data_dim):
    return noises.REGISTRY.build(spec, specs.Context(z_dim=0, data_dim=data_dim))


def build_model(config, data, local_rank=0):
    """Check the data against the likelihood, then build the model on ``config.device`` (CUDA: the
    device ``local_rank``, one per process under torchrun)."""
    builder = MODELS.build(config.model)
    if isinstance(builder, DataBuilder):  # a model that reads the data set: labels, picture shape
        model = builder.build(config, data)
    else:
        model = builder(config, data.data_dim, image_shape=data.image_shape)
    fix = "; binarize it (binarize='dynamic' or binarize='static') or use likelihood='cbernoulli' or 'normal:0.1'"
    model.likelihood.check_data(data.served_sample(), fix=fix, param=("binarize", "likelihood"))
    model.likelihood.check_data(data.x_test, fix=fix, param=("binarize", "likelihood"))
    model.init_from_data(data.served_sample())  # a mixture starts its components at training rows
    return model.to(device(config.device, local_rank))


def model_outline(config, data):
    """The model ``config`` builds for ``data``, on torch's meta device: its parameter shapes, layer
    widths and declared capabilities without allocating its parameters (a model of billions of
    parameters is refused by the resource guard before it exists). Not trained, not loaded.

    A posterior family whose construction reads tensor values (Pyro's autoregressive nets in
    ``iaf:N``) cannot be built there: the outline then has the diagonal posterior, whose encoder is
    the same size; the flow's own nets (sized by the latent dimension) are left out."""
    builder = MODELS.build(config.model)

    def build(cfg):
        with torch.device("meta"):
            if isinstance(builder, DataBuilder):  # a model that reads the data set: labels, picture shape
                return builder.build(cfg, data)
            return builder(cfg, data.data_dim, image_shape=data.image_shape)

    try:
        return build(dataclasses.replace(config))
    except (RuntimeError, NotImplementedError):
        return build(dataclasses.replace(config, posterior="diag"))


def build_elbo(config, model=None):
    """The objective ``config.elbo``; with ``model``, refuse pairs that cannot work (one-line errors)."""
    elbo = make_elbo(config.elbo, num_particles=config.num_particles)
    if model is not None:
        try:
            check_model(elbo, model, name=f"model={config.model!r}", beta=config.beta, kl_warmup=config.kl_warmup)
        except UserError as e:
            raise UserError(str(e), param=(*e.params(), "model")) from None
    return elbo


def fit_options(config):
    """``fit``'s keyword arguments for ``config``: every field ``fit`` shares by name (epochs,
    batch_size, lr, betas, clip_norm, seed, beta, kl_warmup), Adam's ``eps``, the schedule object
    and the epochs to keep."""
    shared = set(inspect.signature(fit).parameters) - {"vae", "data", "elbo", "lr_schedule", "eps"}
    options = {k: v for k, v in config.to_dict().items() if k in shared}
    options.update(eps=config.adam_eps, lr_schedule=config.schedule(), keep_epochs=config.kept_epochs())
    return options


def device(name, local_rank=0):
    """The torch device of a config's ``device`` ("cpu" or "cuda"; CUDA: the device ``local_rank``)."""
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("device='cuda' but CUDA is not available here; use device='cpu'", param="device")
        return torch.device("cuda", local_rank)
    raise UserError(f"device must be cpu or cuda, got {name!r}", param="device")


from . import conditional  # noqa: E402, F401  (registers cvae, cvae-quadrants:Q and m2 at their builders)

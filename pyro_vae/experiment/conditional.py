"""The models that read more of the data set than its rows, built from a config: the class-conditional
VAE (``cvae``: rows ``[x, one_hot(y)]``), the quadrant CVAE (``cvae-quadrants:Q``: square images) and
M2 (``m2``: labels, a semi-supervised split of ``labels`` images and its own training loop).

Each registers its builder as a :class:`~pyro_vae.experiment.build.DataBuilder`: it checks and
prepares the data set (one-line errors before a run directory is made) and builds the model from it.
:func:`trainer` gives the function that trains a model with ``fit``'s arguments: ``fit`` itself, or
M2's semi-supervised loop.
"""

import functools
import sys

from .. import specs
from ..errors import UserError
from ..families import likelihoods, posteriors, priors
from ..inference.semisupervised import SemiSupervisedData, fit_semisupervised
from ..inference.train import fit
from ..labels import check_labels, label_split, num_classes_of, with_label_columns
from ..models import MLP, ConditionalMLP, ConditionalVAE, SemiSupervisedVAE
from ..models.quadrants import QuadrantCVAE, QuadrantSplit, visible_mask
from .build import DataBuilder, model


def _families(config, z_dim, data_dim):
    ctx = specs.Context(z_dim=z_dim, data_dim=data_dim)
    return (priors.REGISTRY.build(config.prior, ctx), likelihoods.REGISTRY.build(config.likelihood, ctx),
            posteriors.REGISTRY.build(config.posterior, ctx))


def _mlp_only(config):
    if config.arch != "mlp":
        raise UserError(f"model={config.model!r} has fully connected networks (the label or the visible pixels "
                        "enter beside the image); drop arch='conv'", param=("model", "arch"))


def _labels_of(data, config):
    """C, after checking that the data set has labels and that they are class indices."""
    if data.y_train is None or data.y_test is None:
        raise UserError(f"model={config.model!r} needs labels, and dataset {data.name} has none (an npz needs "
                        "y_train and y_test)", param=("model", "dataset"))
    num_classes = num_classes_of(data.y_train, data.y_test, data.y_valid)
    for split in ("train", "test", "valid"):
        if getattr(data, f"y_{split}") is not None:
            check_labels(getattr(data, f"y_{split}"), num_classes, f"y_{split}")
    return num_classes


# --- cvae ---------------------------------------------------------------------------------------

def _cvae_data(data, config):
    _labels_of(data, config)
    return with_label_columns(data)


@model("cvae", "class-conditional VAE p(z) p(x | y, z), q(z | x, y); needs labels; bounds on log p(x | y)",
       build=lambda fn, _, ctx: DataBuilder(fn, _cvae_data))
def build_cvae(config, data):
    """p(z) p(x | y, z), q(z | x, y): ``ConditionalMLP`` networks of ``hidden`` with the one-hot label
    into both; any prior (not vamp), likelihood and posterior of the tables."""
    _mlp_only(config)
    num_classes, x_dim = data.label_columns, data.x_dim
    prior, likelihood, posterior = _families(config, config.latent_dim, x_dim)
    hidden = list(config.hidden)
    return ConditionalVAE(
        ConditionalMLP(x_dim, num_classes, hidden, posterior.num_params(config.latent_dim), config.activation),
        ConditionalMLP(config.latent_dim, num_classes, hidden[::-1], likelihood.num_params(x_dim), config.activation),
        num_classes, prior=prior, likelihood=likelihood, posterior=posterior)


# --- cvae-quadrants:Q ---------------------------------------------------------------------------

def _quadrant_data(num_visible):
    def prepare(data, config):
        visible_mask(data.image_shape, num_visible)  # square grey images, or a one-line error
        return data

    return prepare


def _quadrant_builder(fn, num_visible, ctx):
    if num_visible not in (1, 2, 3):
        raise UserError(f"cvae-quadrants:Q takes Q = 1, 2 or 3 visible quadrants, got {num_visible}")
    return DataBuilder(functools.partial(fn, num_visible=num_visible), _quadrant_data(num_visible))


@model("cvae-quadrants", "predict the hidden quadrants from Q = 1, 2, 3 visible ones (square images): CVAE with a "
       "prior network, beside a deterministic baseline; bounds on log p(x_hidden | x_visible)", arg="Q", cast=int,
       example=2, build=_quadrant_builder)
def build_quadrants(config, data, num_visible):
    """Prior network p(z | x_v), recognition network q(z | x), decoder p(x_h | x_v, z) and the baseline
    x_v -> x_h, each an MLP of ``hidden``; ``posterior`` is the family of p(z | x_v) and q(z | x)."""
    _mlp_only(config)
    if config.prior != "normal":
        raise UserError(f"model={config.model!r} has a prior network p(z | x_visible); drop `prior`",
                        param=("model", "prior"))
    split = QuadrantSplit(data.image_shape, num_visible)
    _, likelihood, posterior = _families(config, config.latent_dim, split.hidden_dim)
    hidden, act, params = list(config.hidden), config.activation, posterior.num_params(config.latent_dim)
    out = likelihood.num_params(split.hidden_dim)
    return QuadrantCVAE(split, prior_net=MLP(split.visible_dim, hidden, params, act),
                        encoder=MLP(data.data_dim, hidden, params, act),
                        decoder=ConditionalMLP(config.latent_dim, split.visible_dim, hidden[::-1], out, act),
                        baseline=MLP(split.visible_dim, hidden, out, act), z_dim=config.latent_dim,
                        likelihood=likelihood, posterior=posterior)


# --- m2 -------------------------------------------------------------------------------------------

def _m2_data(data, config):
    num_classes = _labels_of(data, config)
    if config.labels is None:
        raise UserError("model='m2' learns from a few labels: give labels=N, the number of labelled training "
                        f"images ({num_classes} classes: a multiple of {num_classes})", param=("model", "labels"))
    m2_split(data, config)  # refuses a bad number of labels before anything is written
    return data


def m2_split(data, config):
    """The run's balanced labelled/unlabelled split: ``config.labels`` images chosen by ``config.seed``."""
    return label_split(data.y_train, config.labels, num_classes_of(data.y_train, data.y_test, data.y_valid),
                       seed=config.seed)


@model("m2", "semi-supervised M2 (Kingma et al. 2014): q(y | x) learned from N labels (labels=N), y summed out "
       "exactly elsewhere; bounds on log p(x)", build=lambda fn, _, ctx: DataBuilder(fn, _m2_data))
def build_m2(config, data):
    """M2 with the paper's shape: classifier, encoder and decoder MLPs of ``hidden`` (one-hot y into
    the encoder and decoder); any prior (not vamp), likelihood and posterior of the tables."""
    _mlp_only(config)
    num_classes, x_dim = num_classes_of(data.y_train, data.y_test, data.y_valid), data.x_dim
    prior, likelihood, posterior = _families(config, config.latent_dim, x_dim)
    hidden, act = list(config.hidden), config.activation
    return SemiSupervisedVAE(
        classifier=MLP(x_dim, hidden, num_classes, act),
        encoder=ConditionalMLP(x_dim, num_classes, hidden, posterior.num_params(config.latent_dim), act),
        decoder=ConditionalMLP(config.latent_dim, num_classes, hidden[::-1], likelihood.num_params(x_dim), act),
        num_classes=num_classes, prior=prior, likelihood=likelihood, posterior=posterior)


def trainer(config, model):
    """The function that trains ``model`` with ``fit``'s arguments: ``fit``, or for M2
    :func:`fit_m2` (refusing, in one line, the options its loop does not have)."""
    if not model.classifies:
        return fit
    unsupported = [name for name, default in (
        ("lr_schedule", "constant"), ("clip_norm", None), ("beta", 1.0), ("kl_warmup", 0), ("keep_epochs", ""),
        ("num_particles", 1),
    ) if getattr(config, name) != default]
    if unsupported:
        raise UserError(f"model='m2' trains with its own loop (J^alpha of Kingma et al., y summed exactly), which "
                        f"has no `{unsupported[0]}`; drop it", param=(unsupported[0], "model"))
    if config.elbo != "enum":
        raise UserError(f"model='m2' sums the label out exactly (elbo='enum'); drop elbo={config.elbo!r}",
                        param=("model", "elbo"))
    return functools.partial(fit_m2, config=config)


def fit_m2(model, data, elbo, *, config, run=None, resume=False, quiet=False, distributed=None, callbacks=(),
           epochs=10, batch_size=100, lr=3e-4, betas=(0.9, 0.999), seed=0, eps=1e-8, **ignored):
    """``fit``'s signature for M2: the run's split (recorded as ``labels.json``), then
    :func:`~pyro_vae.inference.semisupervised.fit_semisupervised` with alpha = ``config.alpha_scale`` N."""
    if distributed is not None and distributed.active:
        raise UserError("model='m2' trains in one process; run it without torchrun", param="model")
    split = m2_split(data, config)
    if run is not None and not resume:
        run.write_json("labels.json", split.to_dict())

    def on_epoch(row):
        if not quiet:
            print(f"epoch {row['epoch']:3d}  loss {row['train_loss']:9.3f}  test ELBO {row['test_elbo']:9.3f}  "
                  f"test error {100 * row['test_error']:6.2f}%  labelled error {100 * row['labelled_error']:6.2f}%  "
                  f"{row['seconds']:6.1f}s", file=sys.stdout, flush=True)
        for callback in callbacks:
            callback.on_epoch_end(row["epoch"], row, model)

    semi = SemiSupervisedData.from_dataset(data.to(next(model.parameters()).device), split)
    return fit_semisupervised(model, semi, epochs=epochs, batch_size=batch_size,
                              labelled_batch_size=min(batch_size, split.num_labels), lr=lr, betas=betas, eps=eps,
                              alpha=config.alpha_scale * data.num_train, seed=seed, run=run, resume=resume,
                              on_epoch=on_epoch)


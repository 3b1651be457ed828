"""pyro_vae: autoencoders and variational autoencoders as Pyro programs.

The package's folders are its layers (imports only go down; an import-linter contract checks it):

    cli/          the ``pyro-vae`` command
    experiment/   configs, run directories, building from a config, load_run
    plots/        figures
    diagnostics/  bounds, tightness, gaps, studies
    inference/    traces, objectives, KL audit, fit
    models/       networks, VAE, two-layer VAE, autoencoders
    families/     priors, likelihoods, posteriors, noises
    errors, specs, data

``import pyro_vae as pv`` gives the flat public API below, and ``pv.bounds`` the importance-weighted
bounds module (``pv.bounds.log_weights``, ``pv.bounds.iwae``).
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from . import bounds
from .data import Dataset, load_dataset
from .diagnostics.ais import AISResult, ais
from .diagnostics.bdmc import BDMCResult, bdmc
from .diagnostics.bits import bits_per_dim
from .diagnostics.bounds import active_units, bound_curve, ess, iwae, log_weights, psis
from .diagnostics.inference_gap import inference_gaps
from .diagnostics.kl_study import estimator_variance, gradient_variance, kl_check, parameter_groups
from .diagnostics.report import format_table, tightness_report
from .diagnostics.tightness import dataset_statistics, point_statistics, summarise
from .errors import UserError
from .experiment import LoadedRun, RunDir, TrainConfig, load_run
from .families.likelihoods import (
    Bernoulli,
    ContinuousBernoulli,
    DiscretizedLogistic,
    Laplace,
    Likelihood,
    Normal,
    NormalHeteroscedastic,
    NormalLearnedScale,
)
from .families.noises import GaussianNoise, Masking, Noise
from .families.posteriors import IAF, ContextIAF, Delta, DiagonalNormal, FullNormal, LowRankNormal, Posterior
from .families.priors import Flat, MixtureOfGaussians, Prior, SparseLaplace, StandardNormal, VampPrior
from .inference.compiled import CompiledStepWarning
from .inference.estimators import STL_ELBO, IWAE_DReG_ELBO
from .inference.kl_audit import SampledKLWarning, kl_audit
from .inference.objectives import IWAE_ELBO, kl_scale, make_elbo
from .inference.schedules import make_schedule
from .inference.traces import elbo_terms
from .inference.train import evaluate_elbo, fit
from .labels import LabelSplit, label_split, with_label_columns
from .models.autoencoders import Autoencoder, jacobian_frobenius_sq
from .models.base import LatentModel, data_plate
from .models.cvae import ConditionalVAE
from .models.hierarchical import HierarchicalVAE
from .models.m2 import SemiSupervisedVAE
from .models.mixture import MixtureModel
from .models.nets import MLP, ConditionalMLP, ConvDecoder, ConvEncoder
from .models.quadrants import QuadrantCVAE, QuadrantSplit
from .models.vae import VAE

__all__ = [
    "Autoencoder", "Flat", "GaussianNoise", "Masking", "SparseLaplace", "jacobian_frobenius_sq",
    "active_units", "bound_curve", "dataset_statistics", "ess", "inference_gaps", "iwae", "log_weights",
    "point_statistics", "psis", "summarise",
    "SampledKLWarning", "estimator_variance", "gradient_variance", "kl_audit", "kl_check", "parameter_groups",
    # the compiled training step's fallback notice
    "CompiledStepWarning",
    "ContinuousBernoulli", "Delta", "FullNormal", "HierarchicalVAE", "IAF", "IWAE_ELBO", "Laplace",
    "LowRankNormal", "MixtureOfGaussians", "NormalHeteroscedastic", "NormalLearnedScale", "VampPrior",
    "kl_scale",
    "Bernoulli", "Dataset", "DiagonalNormal", "MLP", "Normal", "RunDir", "StandardNormal",
    "TrainConfig", "UserError", "VAE", "data_plate", "elbo_terms", "evaluate_elbo", "fit",
    "load_dataset", "make_elbo",
    # base classes that declare what a family or model can do; learning-rate schedules
    "LatentModel", "Likelihood", "Noise", "Posterior", "Prior", "make_schedule",
    # mixture models with a discrete latent (EM, enumeration, the exact gap)
    "MixtureModel",
    # the context-conditioned IAF of Kingma et al. (2016), spec iaf:N
    "ContextIAF",
    # path-derivative gradient estimators
    "IWAE_DReG_ELBO", "STL_ELBO",
    # annealed importance sampling and the BDMC sandwich
    "AISResult", "BDMCResult", "ais", "bdmc",
    # convolutional nets, the discretised logistic and bits per dimension
    "ConvDecoder", "ConvEncoder", "DiscretizedLogistic", "bits_per_dim",
    # runs as Python objects, and the evaluate report of any model/guide pair
    "LoadedRun", "load_run", "format_table", "tightness_report", "bounds",
    # labels: conditional VAEs and the semi-supervised M2 model
    "ConditionalMLP", "ConditionalVAE", "LabelSplit", "QuadrantCVAE", "QuadrantSplit", "SemiSupervisedVAE",
    "label_split", "with_label_columns",
]

try:
    __version__ = _version("pyro_vae")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

"""pyro_vae: autoencoders and variational autoencoders as Pyro programs."""

from .autoencoders import Autoencoder, GaussianNoise, Masking, jacobian_frobenius_sq
from .bounds import active_units, bound_curve, ess, iwae, log_weights, psis
from .config import TrainConfig
from .data import Dataset, load_dataset
from .errors import UserError
from .evaluate import dataset_statistics, point_statistics, summarise
from .estimators import (SampledKLWarning, estimator_variance, gradient_variance, kl_audit, kl_check,
                         parameter_groups)
from .hierarchical import HierarchicalVAE
from .inference_gap import inference_gaps
from .likelihoods import Bernoulli, ContinuousBernoulli, Laplace, Normal, NormalHeteroscedastic, NormalLearnedScale
from .models import VAE, data_plate
from .nets import MLP
from .objectives import IWAE_ELBO, kl_scale, make_elbo
from .posteriors import IAF, Delta, DiagonalNormal, FullNormal, LowRankNormal
from .priors import Flat, MixtureOfGaussians, SparseLaplace, StandardNormal, VampPrior
from .runs import RunDir
from .terms import elbo_terms
from .train import evaluate_elbo, fit

__all__ = [
    "Autoencoder", "Flat", "GaussianNoise", "Masking", "SparseLaplace", "jacobian_frobenius_sq",
    "active_units", "bound_curve", "dataset_statistics", "ess", "inference_gaps", "iwae", "log_weights",
    "point_statistics", "psis", "summarise",
    "SampledKLWarning", "estimator_variance", "gradient_variance", "kl_audit", "kl_check", "parameter_groups",
    "ContinuousBernoulli", "Delta", "FullNormal", "HierarchicalVAE", "IAF", "IWAE_ELBO", "Laplace",
    "LowRankNormal", "MixtureOfGaussians", "NormalHeteroscedastic", "NormalLearnedScale", "VampPrior",
    "kl_scale",
    "Bernoulli", "Dataset", "DiagonalNormal", "MLP", "Normal", "RunDir", "StandardNormal",
    "TrainConfig", "UserError", "VAE", "data_plate", "elbo_terms", "evaluate_elbo", "fit",
    "load_dataset", "make_elbo",
]

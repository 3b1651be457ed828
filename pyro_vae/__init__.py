"""pyro_vae: autoencoders and variational autoencoders as Pyro programs."""

from .config import TrainConfig
from .data import Dataset, load_dataset
from .errors import UserError
from .likelihoods import Bernoulli, Normal
from .models import VAE, data_plate
from .nets import MLP
from .objectives import make_elbo
from .posteriors import DiagonalNormal
from .priors import StandardNormal
from .runs import RunDir
from .terms import elbo_terms
from .train import evaluate_elbo, fit

__all__ = [
    "Bernoulli", "Dataset", "DiagonalNormal", "MLP", "Normal", "RunDir", "StandardNormal",
    "TrainConfig", "UserError", "VAE", "data_plate", "elbo_terms", "evaluate_elbo", "fit",
    "load_dataset", "make_elbo",
]

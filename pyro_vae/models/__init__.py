"""Models as Pyro programs: networks, the :class:`LatentModel` base, the VAE, the two-layer VAE and
the deterministic autoencoders (a VAE with a point-mass code), and the mixture model (a discrete latent)."""

from .autoencoders import Autoencoder, jacobian_frobenius_sq
from .base import LatentModel, data_plate, latent_scale
from .cvae import ConditionalVAE
from .hierarchical import HierarchicalVAE
from .m2 import SemiSupervisedVAE
from .mixture import MixtureModel
from .nets import MLP, ConditionalMLP, ConvDecoder, ConvEncoder
from .quadrants import QuadrantCVAE, QuadrantSplit
from .vae import VAE

__all__ = ["Autoencoder", "HierarchicalVAE", "LatentModel", "MLP", "MixtureModel", "VAE", "data_plate",
           "jacobian_frobenius_sq", "latent_scale",
           "ConditionalMLP", "ConditionalVAE", "ConvDecoder", "ConvEncoder", "QuadrantCVAE", "QuadrantSplit",
           "SemiSupervisedVAE"]

"""What a user swaps: priors p(z), likelihoods p(x|z), posterior families q(z|x), corruption noises.

Each family is a small ``nn.Module`` class deriving from its kind's base class (:class:`Prior`,
:class:`Likelihood`, :class:`Posterior`, :class:`Noise`), which declares what callers may ask of
it; each module also holds its kind's ``REGISTRY`` of command-line specs (``name[:arg]``).
"""

from .likelihoods import (
                          Bernoulli,
                          ContinuousBernoulli,
                          DiscretizedLogistic,
                          Laplace,
                          Likelihood,
                          Normal,
                          NormalHeteroscedastic,
                          NormalLearnedScale,
)
from .noises import GaussianNoise, Masking, Noise
from .posteriors import IAF, ContextIAF, Delta, DiagonalNormal, FullNormal, LowRankNormal, Posterior
from .priors import Flat, MixtureOfGaussians, Prior, SparseLaplace, StandardNormal, VampPrior

__all__ = ["Bernoulli", "ContextIAF", "ContinuousBernoulli", "Delta", "DiagonalNormal", "Flat", "FullNormal",
           "GaussianNoise", "DiscretizedLogistic",
           "IAF", "Laplace", "Likelihood", "LowRankNormal", "Masking", "MixtureOfGaussians", "Noise", "Normal",
           "NormalHeteroscedastic", "NormalLearnedScale", "Posterior", "Prior", "SparseLaplace", "StandardNormal",
           "VampPrior"]

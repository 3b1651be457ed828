"""Inference: reading log-densities from Pyro traces, the objectives, the KL audit and ``fit``."""

from .compiled import CompiledStepWarning
from .estimators import STL_ELBO, IWAE_DReG_ELBO
from .kl_audit import SampledKLWarning, kl_audit
from .objectives import IWAE_ELBO, kl_scale, make_elbo
from .schedules import Burda, Constant, Cosine, Schedule, make_schedule
from .traces import elbo_terms, get_traces
from .train import TrainingDiverged, evaluate_elbo, fit

__all__ = ["Burda", "CompiledStepWarning", "Constant", "Cosine", "IWAE_DReG_ELBO", "IWAE_ELBO", "STL_ELBO",
           "SampledKLWarning", "Schedule", "TrainingDiverged", "elbo_terms", "evaluate_elbo", "fit", "get_traces",
           "kl_audit", "kl_scale", "make_elbo", "make_schedule"]

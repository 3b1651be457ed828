"""What a run is, for Python users as for the command line: its configuration
(:class:`~pyro_vae.experiment.config.TrainConfig`), its directory of files
(:class:`~pyro_vae.experiment.runs.RunDir`), building data, model and objective from a config
(:mod:`~pyro_vae.experiment.build`), and reloading a trained run (:func:`~pyro_vae.experiment.load.load_run`).

This layer sits under ``cli`` and over ``plots`` and ``diagnostics``: it never names a command-line flag.
"""

from .build import build_data, build_elbo, build_model, fit_options
from .config import TrainConfig
from .load import LoadedRun, load_run
from .runs import RunDir

__all__ = ["LoadedRun", "RunDir", "TrainConfig", "build_data", "build_elbo", "build_model", "fit_options", "load_run"]

"""Small helpers every subcommand shares: torch's thread count and the config fields a user gave."""

import torch

from .config import TrainConfig


def set_threads(threads):
    """Set torch's intra-op threads when ``threads`` is given (None: torch's default)."""
    if threads:
        torch.set_num_threads(threads)


def given_fields(args):
    """The :class:`~pyro_vae.cli.config.TrainConfig` fields given explicitly on the command line."""
    names = TrainConfig.__dataclass_fields__
    return {k: v for k, v in vars(args).items() if k in names and v is not None}

"""Reload a trained run: :func:`load_run` rebuilds the model of a run directory written by
``pyro-vae train`` (or :func:`~pyro_vae.fit` with a :class:`~pyro_vae.experiment.runs.RunDir`) and loads
its parameters, with the run's data set, configuration and history."""

from dataclasses import dataclass

import torch

from ..errors import UserError
from .build import build_data, build_model
from .build import device as device_of
from .config import TrainConfig
from .runs import RunDir


@dataclass
class LoadedRun:
    """A trained run: its directory, config, data and model with the checkpoint's parameters."""

    run: RunDir  # the run directory
    config: TrainConfig  # as config.json holds it (with any data or device override applied)
    data: object  # the Dataset the run trains and is evaluated on
    model: torch.nn.Module  # the LatentModel, parameters loaded, in eval mode
    history: list  # per-epoch dicts up to the checkpoint's epoch, as in history.csv
    epoch: int  # the epoch the checkpoint was written after


def load_run(path, checkpoint=None, device=None, dataset=None, data_dir=None):
    """Rebuild the model of the run directory ``path`` and load a checkpoint (eval mode).

    :param path: a run directory written by ``pyro-vae train`` (or by :func:`~pyro_vae.fit` given a
        :class:`~pyro_vae.experiment.runs.RunDir` and the config it was built from).
    :param checkpoint: the file, relative to the run directory: None for its last checkpoint
        (``checkpoint.pt``), a snapshot such as ``snapshots/epoch-00364.pt``; shipped runs hold a
        model-only ``checkpoint.pt``.
    :param device: ``"cpu"`` or ``"cuda"`` instead of the device in the run's config.
    :param dataset: read the data from elsewhere than the run's config says (the same data: e.g.
        ``"mnist"`` from torchvision's files on a user's machine instead of the npz a benchmark was
        trained on); the model's data dimension must match.
    :param data_dir: the root folder of torchvision's data sets for ``dataset``.
    :returns: a :class:`LoadedRun` (``model``, ``data``, ``config``, ``history``, ``epoch``, ``run``).
    """
    checkpoint = "checkpoint.pt" if checkpoint is None else checkpoint
    run = RunDir(path)
    config = run.config()
    if device is not None:
        config.device = device
    if dataset is not None:
        config.dataset = dataset
    if data_dir is not None:
        config.data_dir = data_dir
    state = run.load_checkpoint(map_location=device_of(config.device), name=checkpoint)
    data = build_data(config)
    model = build_model(config, data)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as e:
        raise UserError(f"{run.file(checkpoint)} does not match {run.file('config.json')} "
                        f"({str(e).splitlines()[0][:100]}); the run is corrupt") from None
    model.eval()
    return LoadedRun(run=run, config=config, data=data, model=model, history=list(state["history"]),
                     epoch=int(state["epoch"]))

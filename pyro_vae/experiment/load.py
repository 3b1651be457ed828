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
        ``"npz:/data/mnist.npz"`` instead of ``"mnist"``); the model's data dimension must match.
        A relative ``npz:PATH``, here or in the config, is relative to the run directory.
    :param data_dir: the folder of ``mnist``, ``fashion-mnist`` and ``kmnist`` (``DIR/mnist.npz``
        or torchvision's ``DIR/MNIST/raw/*-ubyte``), where the config has none or another.
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
    data = build_data(config, base=run.path)
    model = build_model(config, data)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as e:
        raise _mismatch(run, checkpoint, model, state["model"], data, dataset, e) from None
    model.eval()
    return LoadedRun(run=run, config=config, data=data, model=model, history=list(state["history"]),
                     epoch=int(state["epoch"]))


def _mismatch(run, checkpoint, model, saved, data, dataset, error):
    """The error for a checkpoint whose tensors do not fit the model built from the config: other
    data than the run's (``dataset`` given), or a config edited after training."""
    mine = model.state_dict()
    shapes = [(k, tuple(v.shape), tuple(mine[k].shape)) for k, v in saved.items()
              if k in mine and tuple(v.shape) != tuple(mine[k].shape)]
    example = f" ({shapes[0][0]} is {shapes[0][1]} in the checkpoint, {shapes[0][2]} here)" if shapes else ""
    if dataset is not None:
        return UserError(f"dataset={dataset!r} does not fit the run's model: rows of {data.data_dim} values "
                         f"{tuple(data.image_shape)}, while the checkpoint was trained on other rows{example}; give "
                         "the same data the run was trained on (its config.json names it), read from another place",
                         param="dataset")
    first = " ".join(str(error).split())[:100].rsplit(" ", 1)[0]
    return UserError(f"{run.file(checkpoint)} does not fit the model built from {run.file('config.json')}"
                     f"{example or ' (' + first + ')'}; the config was edited after training: restore it")

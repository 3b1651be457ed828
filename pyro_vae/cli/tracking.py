"""Experiment logging for ``pyro-vae train --log tensorboard | mlflow[:URI]`` (the optional extra
``pip install -e .[logging]``).

``fit`` knows nothing of either tool: it calls ``on_epoch_end(epoch, row, vae)`` of each callback it
is given after every epoch's checkpoint (rank 0 only), with the history row. The loggers here write
that row's scalars (train loss, test ELBO, its reconstruction and KL terms, seconds) and, every
``images_every`` epochs and at the last one, two image grids: the first test images over their
reconstructions, and decoder means of prior samples (the same z every time, drawn in a forked RNG
stream so that logging never changes what training draws). TensorBoard writes event files to
``DIR/tensorboard``; MLflow logs to a local SQLite store ``DIR/mlflow.db`` with artifacts in
``DIR/mlartifacts`` (``mlflow ui --backend-store-uri sqlite:///DIR/mlflow.db``), or to ``URI``, and
a resumed run continues its MLflow run (its id is kept in ``DIR/mlflow_run.json``). MLflow writes
in its own thread (``synchronous=False``; a SQLite commit takes about 17 ms, a step of the demo
model 13 ms), flushed when training ends.
"""

import importlib
import logging
import os

import torch

from ..errors import UserError
from ..plots.images import image_grid

SCALARS = {"train_loss": "train/loss", "test_elbo": "test/elbo", "test_reconstruction": "test/reconstruction",
           "test_kl": "test/kl", "seconds": "time/seconds_per_epoch"}  # history.csv column -> logged name
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}
IMAGE_SEED = 0  # the prior draws of the sample grid: the same z at every logged epoch


def check_log_spec(spec):
    """Refuse an unknown ``--log`` spec, or one whose package is not installed, before any training."""
    name, _, arg = spec.partition(":")
    if name not in PACKAGES:
        raise UserError(f"--log takes tensorboard or mlflow[:URI], got {spec!r}")
    if name == "tensorboard" and arg:
        raise UserError(f"--log tensorboard takes no argument (it writes DIR/tensorboard), got {spec!r}")
    try:
        importlib.import_module(PACKAGES[name])
    except ImportError:
        raise UserError(f"--log {name} needs the {PACKAGES[name]} package: pip install 'pyro_vae[logging]' "
                        f"(or pip install {PACKAGES[name]})") from None
    return name, arg or None


def make_logger(spec, run, data, config, images_every=5):
    """The callback that ``--log spec`` asks for, writing into the run directory ``run``."""
    name, arg = check_log_spec(spec)
    snapshot = ImageSnapshot(data, config.epochs, images_every)
    if name == "tensorboard":
        return TensorBoardLogger(run, snapshot)
    return MLflowLogger(run, snapshot, config, uri=arg)


class ImageSnapshot:
    """The image grids of an epoch: first test images over their reconstructions, and prior samples."""

    def __init__(self, data, epochs, every, num_images=8):
        self.x = data.x_test[:num_images]
        self.image_shape, self.epochs, self.every = data.image_shape, epochs, every

    def due(self, epoch):
        return bool(self.every) and (epoch % self.every == 0 or epoch == self.epochs)

    @torch.no_grad()
    def grids(self, vae):
        """``{name: (H', W') or (H', W', 3) array in [0, 1]}``; no samples for a point-mass code."""
        device = next(vae.parameters()).device
        x = self.x.to(device)
        n = len(x)
        grids = {"reconstructions": image_grid(torch.cat([x, vae.reconstruct(x)]), self.image_shape, nrow=n)}
        if not vae.point_mass:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(IMAGE_SEED)
                grids["samples"] = image_grid(vae.sample(2 * n), self.image_shape, nrow=n)
        return grids


class TensorBoardLogger:
    """Scalars and image grids to TensorBoard event files in ``DIR/tensorboard``."""

    def __init__(self, run, snapshot):
        from torch.utils.tensorboard import SummaryWriter

        self.snapshot = snapshot
        self.writer = SummaryWriter(log_dir=run.file("tensorboard"))

    def on_epoch_end(self, epoch, row, vae):
        for key, tag in SCALARS.items():
            self.writer.add_scalar(tag, row[key], epoch)
        if self.snapshot.due(epoch):
            for name, grid in self.snapshot.grids(vae).items():
                self.writer.add_image(name, grid, epoch, dataformats="HWC" if grid.ndim == 3 else "HW")
        self.writer.flush()

    def close(self):
        self.writer.close()


class MLflowLogger:
    """Parameters (the run's config), per-epoch metrics and image grids to an MLflow run."""

    def __init__(self, run, snapshot, config, uri=None):
        import mlflow

        for name in ("mlflow", "alembic"):  # their INFO lines (creating tables, migrations) are not ours to print
            logging.getLogger(name).setLevel(logging.WARNING)
        self.snapshot = snapshot
        path = os.path.abspath(run.path)
        local = uri is None
        self.uri = uri or f"sqlite:///{path}/mlflow.db"
        self.client = mlflow.MlflowClient(self.uri)
        self.run_id = self._resumed_run(run)
        if self.run_id is None:
            experiment = self.client.get_experiment_by_name("pyro-vae")
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(
                "pyro-vae", artifact_location=f"file:{path}/mlartifacts" if local else None)
            self.run_id = self.client.create_run(experiment_id, run_name=os.path.basename(path),
                                                 tags={"run_directory": path}).info.run_id
            params = {k: str(v) for k, v in config.to_dict().items()}
            self.client.log_batch(self.run_id, params=[mlflow.entities.Param(k, v) for k, v in params.items()])
            run.write_json("mlflow_run.json", {"tracking_uri": self.uri, "run_id": self.run_id})
        else:
            self.client.update_run(self.run_id, status="RUNNING")
        self._metric = mlflow.entities.Metric

    def _resumed_run(self, run):
        if not os.path.isfile(run.file("mlflow_run.json")):
            return None
        saved = run.read_json("mlflow_run.json")
        return saved.get("run_id") if saved.get("tracking_uri") == self.uri else None

    def on_epoch_end(self, epoch, row, vae):
        import time

        now = int(time.time() * 1000)
        metrics = [self._metric(tag, float(row[key]), now, epoch) for key, tag in SCALARS.items()]
        self.client.log_batch(self.run_id, metrics=metrics, synchronous=False)  # written by MLflow's thread
        if self.snapshot.due(epoch):
            for name, grid in self.snapshot.grids(vae).items():
                self.client.log_image(self.run_id, (grid * 255).round().astype("uint8"), key=name, step=epoch,
                                      synchronous=False)

    def close(self):
        import mlflow

        mlflow.flush_async_logging()  # everything queued is in the store before the run is marked finished
        self.client.set_terminated(self.run_id)

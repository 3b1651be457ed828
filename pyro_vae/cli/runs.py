"""A run directory: ``config.json``, ``history.csv``, ``checkpoint.pt``, ``summary.json``, and the
atomic writers every command uses for them and for its figures.

Every write is atomic (temporary file in the same directory, then ``os.replace``), so an
interrupted run never leaves a half-written file. Checkpoints load with ``weights_only=True``:
loading never executes code from the file.
"""

import csv
import io
import json
import math
import os
import pickle
import tempfile
import zipfile

import torch

from ..errors import UserError
from .config import TrainConfig

CHECKPOINT_FORMAT = "pyro_vae.checkpoint/1"


def atomic_write_bytes(path, data):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_png(fig, path, dpi=90):
    """Write a matplotlib ``Figure`` as a PNG, atomically: the one way every command saves figures."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(path, buf.getvalue())


def json_safe(obj):
    """``obj`` with non-finite floats replaced by None (strict JSON has no NaN or infinity)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def atomic_write_json(path, obj):
    """Write ``obj`` as strict JSON (NaN and infinities become null), atomically."""
    text = json.dumps(json_safe(obj), indent=2, sort_keys=True, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


class RunDir:
    """One training run's directory."""

    def __init__(self, path):
        self.path = str(path)

    def file(self, name):
        return os.path.join(self.path, name)

    def exists(self):
        return os.path.isfile(self.file("config.json"))

    # --- creation and config -----------------------------------------------------------------

    def create(self, config):
        """Start a new run here; refuses to touch a directory that already holds one."""
        if self.exists() or os.path.exists(self.file("checkpoint.pt")):
            raise UserError(f"{self.path} already holds a run; continue it with --resume {self.path} "
                            "or choose a new --out")
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise UserError(f"--out {self.path} is a file, not a directory; choose a new --out")
        os.makedirs(self.path, exist_ok=True)
        atomic_write_json(self.file("config.json"), config.to_dict())

    def config(self):
        if not os.path.isdir(self.path):
            raise UserError(f"run directory {self.path} does not exist; train one with "
                            f"pyro-vae train --out {self.path}")
        d = self.read_json("config.json")
        if not isinstance(d, dict):
            raise UserError(f"{self.file('config.json')} is not a JSON object; the run is corrupt")
        return TrainConfig.from_dict(d)

    def read_json(self, name):
        path = self.file(name)
        if not os.path.isfile(path):
            raise UserError(f"{path} is missing: {self.path} is not a pyro_vae run directory "
                            "(train one with pyro-vae train --out DIR)")
        try:
            with open(path) as f:
                return json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{path} is not valid JSON ({e.__class__.__name__}); the run is corrupt") from None

    def write_json(self, name, obj):
        atomic_write_json(self.file(name), obj)

    # --- checkpoint --------------------------------------------------------------------------

    def has_checkpoint(self):
        return os.path.isfile(self.file("checkpoint.pt"))

    def save_checkpoint(self, state):
        buf = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, **state}, buf)
        atomic_write_bytes(self.file("checkpoint.pt"), buf.getvalue())

    def save_snapshot(self, state):
        """Keep the model of ``state`` (a checkpoint) as ``snapshots/epoch-NNNNN.pt``: parameters,
        epoch and history, no optimiser (a few MB): evaluate it later with ``--checkpoint``."""
        os.makedirs(self.file("snapshots"), exist_ok=True)
        path = self.file(os.path.join("snapshots", f"epoch-{int(state['epoch']):05d}.pt"))
        buf = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, "model_only": True,
                    **{k: state[k] for k in ("epoch", "model", "history")}}, buf)
        atomic_write_bytes(path, buf.getvalue())
        return path

    def load_checkpoint(self, map_location="cpu", name="checkpoint.pt"):
        """The checkpoint ``name`` (relative to the run directory; a snapshot or a shipped
        model-only checkpoint load the same way, without optimiser state)."""
        path = self.file(name)
        if not os.path.isfile(path) and name != "checkpoint.pt":
            raise UserError(f"{path} is missing; list the run's snapshots with ls {self.file('snapshots')}")
        if not os.path.isfile(path):
            raise UserError(f"{path} is missing: no epoch of this run finished; start it again with "
                            "pyro-vae train --out NEW_DIR")
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError,
                ValueError, AttributeError, TypeError) as e:
            reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
            raise UserError(f"{path} is not a readable pyro_vae checkpoint (truncated or foreign file: "
                            f"{reason}); restore it or train again with a new --out") from None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise UserError(f"{path} is not a pyro_vae checkpoint (format {CHECKPOINT_FORMAT} expected); "
                            "train again with a new --out")
        return state

    # --- history -----------------------------------------------------------------------------

    def write_history(self, rows):
        if not rows:
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_bytes(self.file("history.csv"), buf.getvalue().encode())

    def read_history(self):
        with open(self.file("history.csv"), newline="") as f:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]

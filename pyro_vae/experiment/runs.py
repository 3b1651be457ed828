"""A run directory: ``config.json``, ``history.csv``, ``checkpoint.pt``, ``summary.json``, and the
atomic writers every command uses for them and for its figures.

Every write is atomic (temporary file ``.tmp-<pid>-*`` in the same directory, then ``os.replace``),
so an interrupted run never leaves a half-written file; a killed writer's temporary files are
removed by the next command on the directory (:meth:`RunDir.clean_orphans`). Files get the user's
umask, as any other tool's. A write that fails (full disk, read-only directory) is one
:class:`UserError` naming the file, the earlier version of which is intact. ``train`` holds an OS
lock on the directory (:meth:`RunDir.lock`, ``fcntl.flock`` on ``DIR/.lock``: it dies with the
process), so a second writer is refused; readers (``evaluate``, ``plot``) take no lock. Checkpoints
load with ``weights_only=True``: loading never executes code from the file.
"""

import csv
import fcntl
import io
import json
import math
import os
import pickle
import re
import tempfile
import zipfile

import torch

from ..errors import UserError
from .config import TrainConfig

CHECKPOINT_FORMAT = "pyro_vae.checkpoint/1"


LOCK_FILE = ".lock"  # train's writer lock; holds the PID of the process that has it
TMP_PREFIX = ".tmp-"  # atomic writes' temporary files: .tmp-<pid>-<random>


def file_mode():
    """The mode ``open()`` would give a new file under the user's umask (``mkstemp`` gives 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_error(path, error, intact=None):
    """A one-line :class:`UserError` for a failed write of ``path`` (full disk, read-only directory)."""
    reason = error.strerror or type(error).__name__
    return UserError(f"cannot write {path} ({reason}); {intact or 'any earlier version of it is intact'}")


def atomic_write_bytes(path, data, intact=None):
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``; an ``OSError`` becomes
    :func:`write_error` (``intact`` says what survived)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=directory)
    except OSError as e:
        raise write_error(path, e, intact) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), file_mode())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise write_error(path, e, intact) from None
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
        self._lock_fd = None  # the descriptor holding the writer lock, while this process has it

    def file(self, name):
        return os.path.join(self.path, name)

    def exists(self):
        return os.path.isfile(self.file("config.json"))

    # --- creation, the writer lock and orphaned temporary files -------------------------------

    def foreign_files(self):
        """Entries of a directory that holds no run, other than a lock and temporary files left by a
        start that failed: a ``history.csv`` there is the user's, not ours."""
        try:
            names = os.listdir(self.path)
        except OSError as e:
            raise UserError(f"cannot read {self.path} ({e.strerror}); choose another --out") from None
        return sorted(n for n in names if n != LOCK_FILE and _temporary(n) is None)

    def check_new(self):
        """Refuse, before anything is created, a ``--out`` that cannot hold a new run: an existing run,
        a file, a directory of other files, or a place that cannot be written."""
        if self.exists() or os.path.exists(self.file("checkpoint.pt")):
            raise UserError(f"{self.path} already holds a run; continue it with --resume {self.path} "
                            "or choose a new --out")
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise UserError(f"--out {self.path} is a file, not a directory; choose a new --out")
        if os.path.isdir(self.path):
            others = self.foreign_files()
            if others:
                listed = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
                raise UserError(f"--out {self.path} is a directory holding other files ({listed}), not a run; "
                                "choose a new or empty directory")
        existing = os.path.abspath(self.path)
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):
            raise UserError(f"cannot create {self.path}: {existing} is a file, not a directory; choose another --out")
        check_writable(existing)

    def create(self, config):
        """Start a new run here (:meth:`check_new` first), under the writer lock."""
        self.check_new()
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create {self.path} ({e.strerror}); choose another --out") from None
        self.lock()
        self.check_new()  # again, under the lock: another train may have started here meanwhile
        atomic_write_json(self.file("config.json"), config.to_dict())

    def lock(self):
        """Take the directory's writer lock for this process (``fcntl.flock``, released by
        :meth:`unlock` or when the process ends, however it ends), or refuse with the holder's PID."""
        path = self.file(LOCK_FILE)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, file_mode())
        except OSError as e:
            raise write_error(path, e, "nothing was changed") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if not isinstance(e, BlockingIOError):  # e.g. a file system without locks
                os.close(fd)
                raise UserError(f"cannot lock {path} ({e.strerror}); train on a local file system") from None
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            who = f"process {holder}" if holder.isdigit() else "another process"
            raise UserError(f"{self.path} is being trained by {who}; wait for it to finish (or stop it) "
                            "before training this run again") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        self.clean_orphans()

    def unlock(self):
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock

    def clean_orphans(self):
        """Remove temporary files whose writer is dead (killed mid-write); others' live writes stay."""
        try:
            names = os.listdir(self.path)
        except OSError:
            return
        for name in names:
            pid = _temporary(name)
            if pid is None or (pid and _alive(pid)):
                continue
            try:
                os.unlink(self.file(name))
            except OSError:
                pass

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
        except OSError as e:
            raise UserError(f"cannot read {path} ({e.strerror})") from None

    def write_json(self, name, obj):
        atomic_write_json(self.file(name), obj)

    # --- checkpoint --------------------------------------------------------------------------

    def has_checkpoint(self):
        return os.path.isfile(self.file("checkpoint.pt"))

    def save_checkpoint(self, state):
        buf = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, **state}, buf)
        intact = "the checkpoint of the last saved epoch is intact" if self.has_checkpoint() else \
            "no epoch is saved yet"
        atomic_write_bytes(self.file("checkpoint.pt"), buf.getvalue(),
                           intact=f"{intact}: make room, then continue with pyro-vae train --resume {self.path}")

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


def check_writable(directory):
    """Refuse a directory this process cannot write (a read-only file system, no permission)."""
    if not os.access(directory, os.W_OK):
        raise UserError(f"{directory} is not writable (read-only file system or no permission); "
                        "copy the run to a writable place")


def _temporary(name):
    """For a temporary file of :func:`atomic_write_bytes`, its writer's PID (0 for the PID-less names
    of older versions: ``.tmp-`` and mkstemp's 8 random characters); None for any other name."""
    match = re.fullmatch(rf"{re.escape(TMP_PREFIX)}(?:(\d+)-[\w]{{8}}|[\w]{{8}})", name)
    return None if match is None else int(match.group(1) or 0)


def _alive(pid):
    """Whether process ``pid`` exists (this process counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

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


def write_error(path, error, intact=None, param=None):
    """A one-line :class:`UserError` for a failed write of ``path`` (full disk, read-only directory);
    ``param`` names the parameters ``intact`` speaks of."""
    reason = error.strerror or type(error).__name__
    return UserError(f"cannot write {path} ({reason}); {intact or 'any earlier version of it is intact'}",
                     param=param)


def atomic_write_bytes(path, data, intact=None, param=None):
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``; an ``OSError`` becomes
    :func:`write_error` (``intact`` says what survived, ``param`` the parameters it names)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=directory)
    except OSError as e:
        raise write_error(path, e, intact, param) from None
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
            raise write_error(path, e, intact, param) from None
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
            raise UserError(f"cannot read {self.path} ({e.strerror}); choose another `path`", param="path") from None
        return sorted(n for n in names if n != LOCK_FILE and _temporary(n) is None)

    def check_new(self):
        """Refuse, before anything is created, a ``path`` that cannot hold a new run: an existing run,
        a file, a directory of other files, or a place that cannot be written."""
        if self.exists() or os.path.exists(self.file("checkpoint.pt")):
            raise UserError(f"{self.path} already holds a run; continue it with resume={self.path!r} "
                            "or choose a new `path`", param=("resume", "path"))
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise UserError(f"path={self.path!r} is a file, not a directory; choose a new `path`", param="path")
        if os.path.isdir(self.path):
            others = self.foreign_files()
            if others:
                listed = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
                raise UserError(f"path={self.path!r} is a directory holding other files ({listed}), not a run; "
                                "choose a new or empty directory", param="path")
        existing = os.path.abspath(self.path)
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):
            raise UserError(f"cannot create {self.path}: {existing} is a file, not a directory; choose another `path`",
                            param="path")
        check_writable(existing)

    def create(self, config):
        """Start a new run here (:meth:`check_new` first), under the writer lock."""
        self.check_new()
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create {self.path} ({e.strerror}); choose another `path`", param="path") from None
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
            raise UserError(f"run directory {self.path} does not exist; train a new run there first "
                            f"(path={self.path!r})", param="path")
        d = self.read_json("config.json")
        if not isinstance(d, dict):
            raise UserError(f"{self.file('config.json')} is not a JSON object; the run is corrupt")
        try:
            return TrainConfig.from_dict(d)
        except UserError as e:  # name the file: the fix is an edit of it
            raise UserError(f"{self.file('config.json')}: {e}") from None

    def read_json(self, name):
        path = self.file(name)
        if not os.path.isfile(path):
            raise UserError(f"{path} is missing: {self.path} is not a pyro_vae run directory "
                            "(train a new run: path=DIR)", param="path")
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
                           intact=f"{intact}: make room, then continue it with resume={self.path!r}", param="resume")

    def save_snapshot(self, state):
        """Keep the model of ``state`` (a checkpoint) as ``snapshots/epoch-NNNNN.pt``: parameters,
        epoch and history, no optimiser (a few MB): load it later with ``load_run(path, checkpoint=...)``."""
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
            raise UserError(f"{path} is missing: no epoch of this run finished; train it from its config "
                            f"with resume={self.path!r}", param="resume")
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError,
                ValueError, AttributeError, TypeError) as e:
            raise UserError(f"{path} is not a readable pyro_vae checkpoint (truncated or foreign file: "
                            f"{first_sentence(e)}); restore it, or train a new run (path=NEW_DIR)",
                            param="path") from None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise UserError(f"{path} is not a pyro_vae checkpoint (format {CHECKPOINT_FORMAT} expected); "
                            "train a new run (path=NEW_DIR)", param="path")
        return state

    # --- history -----------------------------------------------------------------------------

    def write_history(self, rows):
        """Write ``history.csv``: one row per epoch, every column any row has (a column that rows of
        an older version lack is empty there)."""
        if not rows:
            return
        buf = io.StringIO()
        columns = list(dict.fromkeys(k for row in rows for k in row))
        writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_bytes(self.file("history.csv"), buf.getvalue().encode())

    def read_history(self):
        """The rows of ``history.csv`` as dicts of floats (an empty cell is NaN)."""
        with open(self.file("history.csv"), newline="") as f:
            return [{k: float(v) if v != "" else math.nan for k, v in row.items()} for row in csv.DictReader(f)]


def first_sentence(error, limit=160):
    """The first sentence of an exception's message, whole words only, at most ``limit`` characters
    (``...`` where cut), for a one-line message; the exception's type when it has no message.

    Example::

        >>> first_sentence(RuntimeError("Weights only load failed. This file can still be loaded. If you trust it"))
        'Weights only load failed'
        >>> first_sentence(ValueError("x" * 5 + " word" * 50), limit=20)
        'xxxxx word word ...'
    """
    text = " ".join(str(error).split())
    if not text:
        return type(error).__name__
    text = re.split(r"(?<=[a-z0-9)])\.(?:\s|$)", text, maxsplit=1)[0]
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " ..."


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

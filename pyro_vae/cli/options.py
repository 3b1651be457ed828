"""Small helpers every subcommand shares: torch's thread count, the config fields a user gave, output
that survives a closed pipe, and progress that suits a terminal or a log file."""

import os
import sys
import time

import torch

from ..experiment import guard
from ..experiment.config import TrainConfig

# Printed under a positive ELBO (train's summary, evaluate's table).
POSITIVE_ELBO_NOTE = ("note: a positive ELBO is possible here: the likelihood is a density over continuous values, "
                      "which can exceed 1, so it is not comparable with a Bernoulli ELBO on binary data")


def set_threads(threads):
    """Set torch's intra-op threads when ``threads`` is given (None: torch's default), and the
    thread pools of numpy's and scikit-learn's BLAS and OpenMP libraries to the same number
    (threadpoolctl), so that a command's numbers depend on ``--threads`` alone: a BLAS product's
    rounding depends on how many threads split it (the code report's probes, PSIS)."""
    if threads:
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(threads)
        threadpool_limits(limits=threads)  # for the rest of the process


def check_resources(need, device="cpu", force=False):
    """The resource guard (:func:`pyro_vae.experiment.guard.check`) of a command's ``need``, before
    any work: under torchrun the processes on this machine (``LOCAL_WORLD_SIZE``) share its memory."""
    available = guard.available_bytes(device)
    if available is not None and torch.device(device).type == "cpu":
        available //= max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return guard.check(need, available=available, force=force)


def given_fields(args):
    """The :class:`~pyro_vae.experiment.config.TrainConfig` fields given explicitly on the command line."""
    names = TrainConfig.__dataclass_fields__
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def say(*args):
    """``print`` to stdout; once its reader has gone (``pyro-vae plot DIR | head``), stdout points at
    /dev/null and the command carries on quietly."""
    try:
        print(*args, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # later prints vanish quietly


class Progress:
    """Progress of ``total`` units on stderr: tqdm's bar on a terminal; otherwise (a log file, a pipe)
    one plain line after the first update, then at most every ``every`` seconds, and at the end.
    ``update(n)`` and ``close()`` as tqdm's."""

    def __init__(self, total, unit, desc, disable=False, every=5.0, stream=None):
        self.stream = stream or sys.stderr
        self.total, self.unit, self.desc, self.every, self.done = total, unit, desc, every, 0
        self.disable = disable
        self.bar = None
        if not disable and self.stream.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit=unit, desc=desc, dynamic_ncols=True, file=self.stream)
        self.start = self.last = time.perf_counter()

    def update(self, n=1):
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif not self.disable and (self.done == n or time.perf_counter() - self.last >= self.every
                                   or self.done >= self.total):
            self._line()

    def _line(self):
        self.last = now = time.perf_counter()
        print(f"{self.desc}: {self.done}/{self.total} {self.unit} ({self.done / max(self.total, 1):.0%}), "
              f"{now - self.start:.0f} s", file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()

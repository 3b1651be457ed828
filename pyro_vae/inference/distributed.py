"""Data-parallel training and evaluation across the processes ``torchrun`` starts.

Each process (rank) holds the whole model. A training step takes one global minibatch of
``world_size x B`` rows of the epoch's seeded permutation (the same on every rank, binarised the
same way), and rank r scores its contiguous slice of it. Gradients are averaged by an all-reduce
of one flat buffer, each rank's weighted by its share of the global batch's rows, so the update is
exactly the single-process update for a batch of the global size (ragged last batch included): the
minibatch ELBO keeps its N / B scaling, and the objective is the same full-data ELBO.

Why an all-reduce of the gradients rather than ``DistributedDataParallel``: Pyro's ELBOs call the
encoder and decoder inside ``model`` and ``guide``, not through one module's ``forward``, which DDP
needs to hook its gradient buckets; one all-reduce per step of a few-MB buffer costs the same here.

``gloo`` on CPU, ``nccl`` on CUDA, picked from the device. A job not started by torchrun (no
``WORLD_SIZE`` above 1 in the environment) gets :data:`SINGLE`, whose methods do nothing.

Teardown. ``torch._dynamo`` (which ``torch.optim`` imports when the first optimiser is built)
takes about ten references to the default process group when it is imported after
``init_process_group`` (torch 2.14: ``sys.getrefcount`` of the group 9 -> 19), so that
``destroy_process_group()`` no longer destroys it: its gloo threads (``gloo_tcp_loop`` and two
``pt_gloo_runloop``) were still running when the interpreter shut down, which is where a worker
could abort (``terminate called without an active exception``). :func:`from_environment`
therefore imports it first. The same holds after a failure: the frames of the exception in flight
(a collective that raised) hold the group, so :func:`shutdown` clears them before destroying it. It
then checks that the threads are gone (:class:`TeardownWarning` if not).
"""

import gc
import math
import os
import sys
import traceback
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist

GLOO_THREADS = ("gloo_tcp_loop", "pt_gloo_runloop")  # the names gloo's threads give themselves (Linux)


class TeardownWarning(RuntimeWarning):
    """The process group outlived ``destroy_process_group()``: its threads still run at exit."""


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job: ``rank`` of ``world_size``; methods are collectives."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # rank on this machine: the CUDA device index under torchrun

    @property
    def active(self):
        return self.world_size > 1

    @property
    def is_main(self):
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0

    def shard(self, xb):
        """This rank's contiguous slice of a global batch ``(G, ...)`` and its share of the rows, n_r / G."""
        if not self.active:
            return xb, 1.0
        per_rank = math.ceil(xb.shape[0] / self.world_size)
        part = xb[self.rank * per_rank : (self.rank + 1) * per_rank]
        return part, part.shape[0] / xb.shape[0]

    def average_gradients(self, params, loss, weight):
        """Replace each parameter's gradient by sum_r weight_r grad_r over the ranks, and return the
        loss combined the same way (so a NaN on any rank reaches every rank)."""
        if not self.active:
            return loss
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads] + [torch.tensor([loss], dtype=grads[0].dtype,
                                                                        device=grads[0].device)])
        flat.mul_(weight)
        dist.all_reduce(flat)
        offset = 0
        for p, g in zip(params, grads, strict=False):
            n = g.numel()
            p.grad = flat[offset : offset + n].view_as(g).clone()
            offset += n
        return flat[-1].item()

    def sum(self, values):
        """``values`` (a list of floats) summed over the ranks, in float64."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()

    def gather(self, obj):
        """Every rank's ``obj`` as a list in rank order (pickled; for small per-rank results)."""
        if not self.active:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_parameters(self, module):
        """Copy rank 0's parameters and buffers to every rank."""
        if self.active:
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)

    def barrier(self):
        if self.active:
            dist.barrier()


SINGLE = Distributed()


def from_environment(device=None):
    """The job ``torchrun`` started this process in (``RANK``, ``WORLD_SIZE``), with its process group
    initialised (``gloo`` on CPU, ``nccl`` on CUDA); :data:`SINGLE` outside torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    if not dist.is_initialized():
        import torch._dynamo  # noqa: F401  (before the group: imported after, it keeps the group alive; see above)

        cuda = device is not None and torch.device(device).type == "cuda"
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Distributed(rank=dist.get_rank(), world_size=dist.get_world_size(),
                       local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def shutdown(synchronize=False):
    """Tear the process group down (at the end of a torchrun job).

    :param synchronize: wait for every rank first (a barrier), so that no rank tears its connections
        down while another still finishes its own work; only on a clean exit, where every rank gets
        here (a rank that failed would leave the others waiting).
    """
    if dist.is_initialized():
        if synchronize:
            dist.barrier()
        _release_failed_frames()
        dist.destroy_process_group()
        left = alive_threads(GLOO_THREADS)
        if left:
            warnings.warn(TeardownWarning(f"the process group outlived destroy_process_group(): {', '.join(left)} "
                                          "still run; something holds a reference to it"), stacklevel=2)


def _release_failed_frames():
    """Clear the locals of the finished frames of the exception in flight (when ``shutdown`` runs in a
    ``finally`` after a failure): a failed collective's frames hold the process group and its work
    objects, which would keep the group, and its gloo threads, alive past ``destroy_process_group()``."""
    error, seen = sys.exc_info()[1], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)  # executing frames are skipped
        error = error.__cause__ or error.__context__
    gc.collect()  # the group's cycles, if any


def alive_threads(prefixes):
    """Names of this process's threads that start with one of ``prefixes`` (Linux; [] elsewhere)."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return []
    names = []
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        if name.startswith(prefixes):
            names.append(name)
    return sorted(names)

"""What ``fit`` keeps between epochs and restores on resume, and its JIT bookkeeping.

:class:`TrainState` holds the optimiser, the minibatch RNG and the history, and turns them into a
checkpoint and back. :class:`JitCompiler` traces a compiled objective once per distinct keyword
arguments (a KL warm-up changes ``kl_scale`` every epoch), outside the training RNG stream, so a
resumed run draws exactly what an uninterrupted one does.
"""

import torch

from ..errors import UserError
from .distributed import SINGLE
from .objectives import is_jit, kl_scale


def make_optimizer(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    """Adam as ``fit`` uses it: torch's fused implementation where it runs (CPU and CUDA float
    tensors), which takes about a third of the default implementation's time per step on the demo
    net; the same algorithm, equal to it up to float rounding."""
    params = list(params)
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64) for p in params)
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps, fused=fused or None)


class TrainState:
    """Adam over the trainable parameters of ``vae``, the minibatch generator, and the history.

    :param float eps: Adam's epsilon. The learning rate is set per epoch by ``fit``.
    """

    def __init__(self, vae, lr, betas, eps, device="cpu"):
        self.params = [p for p in vae.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.params, lr, betas, eps)
        self.data_rng = torch.Generator(device=device)  # where the training set lives
        self.history = []
        self.epoch = 0  # the last finished epoch
        self._rng = None  # the checkpoint's RNG state, until restore_rng sets it

    def seed(self, seed, distributed=SINGLE):
        """A fresh run: seed torch's global stream (the ELBO's draws; each rank its own) and the
        minibatch stream (the same permutation and binarisation on every rank)."""
        torch.manual_seed(seed if distributed.rank == 0 else seed + 7919 * distributed.rank)
        self.data_rng.manual_seed(seed)

    def load(self, vae, state, lr, betas, eps, distributed=SINGLE):
        """Restore parameters, optimiser, history and epoch from a checkpoint ``state``; the RNG
        streams are restored later by :meth:`restore_rng` (after any JIT compilation). A checkpoint
        continues only with the number of processes that wrote it (each rank has its own stream)."""
        if state.get("model_only"):
            raise UserError("this checkpoint holds a model only (a snapshot, or shipped for evaluation), no "
                            "optimiser state; it cannot be resumed: start a new run from scratch")
        written_by = int(state.get("world_size", 1))
        if written_by != distributed.world_size:
            raise UserError(f"the checkpoint was written by a run of {written_by} process(es), this one has "
                            f"{distributed.world_size}; resume it with {written_by} process(es), as it started",
                            param="world_size")
        fused = [group["fused"] for group in self.optimizer.param_groups]
        try:
            vae.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:  # e.g. a config edited to another latent_dim
            first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
            raise UserError(f"the checkpoint does not fit the model built from the run's config ({first}); "
                            "the config was changed after training: restore it, or train a new run") from None
        # a resumed run may lower lr (e.g. after a NaN)
        for group, f in zip(self.optimizer.param_groups, fused, strict=True):
            group["lr"], group["betas"], group["eps"], group["fused"] = lr, tuple(betas), eps, f
        self.history, self.epoch = list(state["history"]), int(state["epoch"])
        self._rng = state["rng_ranks"][distributed.rank] if "rng_ranks" in state else state["rng"]

    def restore_rng(self):
        """Set both RNG streams to the checkpoint's (a no-op for a fresh run)."""
        state, self._rng = self._rng, None
        if state is None:
            return
        torch.set_rng_state(state["torch"].cpu())
        self.data_rng.set_state(state["data"].cpu())  # a CUDA generator's state is a CPU tensor too
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])

    def set_lr(self, lr):
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def checkpoint(self, vae, distributed=SINGLE):
        """The state a resumed run needs, after epoch ``self.epoch`` (a collective: every rank calls
        it; each rank's RNG state is gathered, rank 0 writes)."""
        rng = {"torch": torch.get_rng_state(), "data": self.data_rng.get_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        state = {"epoch": self.epoch, "model": vae.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "rng": rng, "history": self.history}
        if distributed.active:
            state.update(world_size=distributed.world_size, rng_ranks=distributed.gather(rng))
        return state


def kl_kwargs(epoch, beta, kl_warmup):
    """``{"kl_scale": s}`` for the model and guide in ``epoch``, or ``{}`` when the weight is 1."""
    scale = kl_scale(epoch, beta, kl_warmup)
    return {} if scale is None else {"kl_scale": scale}


class JitCompiler:
    """Compiles a JIT objective for each new set of keyword arguments, outside the RNG stream.

    For other objectives every method is a no-op.
    """

    def __init__(self, vae, elbo, batch, num_data):
        self.vae, self.elbo, self.batch, self.num_data = vae, elbo, batch, num_data
        self.active = is_jit(elbo)
        self.compiled = None

    def ensure(self, kwargs):
        """Trace the graph for ``kwargs`` unless it is the one traced last."""
        if not self.active or kwargs == self.compiled:
            return
        with torch.random.fork_rng():
            self.elbo.loss_and_grads(self.vae.model, self.vae.guide, self.batch, num_data=self.num_data, **kwargs)
        for p in self.vae.parameters():
            p.grad = None
        self.compiled = kwargs

"""``fit``: the SVI loop with Adam, per-epoch history, atomic checkpoints, resume and a NaN guard."""

import math
import statistics
import sys
import time

import torch
from tqdm.auto import tqdm

from ..errors import UserError
from .compiled import check_mode
from .distributed import SINGLE
from .divergence import DivergenceWatch
from .em import is_closed_form
from .enumeration import enumerated_terms
from .graph_step import GraphLoss
from .kl_audit import uses_analytic_kl, warn_sampled_kl
from .objectives import is_jit
from .step import SVIStep
from .traces import elbo_terms
from .train_state import JitCompiler, TrainState, kl_kwargs


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@torch.no_grad()
def evaluate_elbo(vae, x, batch_size=1000, distributed=SINGLE):
    """Mean one-sample ELBO per data point of ``x`` and its terms (analytic KL where registered);
    for a discrete latent (``vae.discrete_latent``) the exact ELBO, summed over the latent's values.

    With several processes each scores its contiguous share of the rows and the sums are combined,
    so every rank returns the same numbers."""
    device = next(vae.parameters()).device
    per_rank = math.ceil(len(x) / distributed.world_size)
    mine = x[distributed.rank * per_rank : (distributed.rank + 1) * per_rank]
    keys = ("elbo", "reconstruction", "kl")
    totals = [0.0] * len(keys)
    terms_of = enumerated_terms if vae.discrete_latent else lambda m, xb: elbo_terms(m.model, m.guide, xb)
    for start in range(0, len(mine), batch_size):
        terms = terms_of(vae, mine[start : start + batch_size].to(device))
        totals = [t + terms[k].double().sum().item() for t, k in zip(totals, keys, strict=False)]
    return {k: v / len(x) for k, v in zip(keys, distributed.sum(totals), strict=False)}


def fit(vae, data, elbo, epochs=10, batch_size=128, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
        lr_schedule=None, clip_norm=None, seed=0, run=None, resume=False, quiet=False, eval_batch_size=1000,
        beta=1.0, kl_warmup=0, keep_epochs=(), distributed=SINGLE, callbacks=(), step="compiled"):
    """Train ``vae`` on ``data`` (a :class:`~pyro_vae.data.Dataset`) by maximising ``elbo``.

    Each step draws a minibatch of B rows, estimates the full-data ELBO (the ``"data"`` plate
    scales by N / B), backpropagates and takes an Adam step on every parameter of ``vae``.

    ``seed`` seeds the minibatch order and the ELBO's draws, not the networks' initialisation,
    which happened when ``vae`` was built: seed before building it (``pyro.set_rng_seed(seed)``, as
    ``pyro-vae train`` does) to repeat a run exactly.

    :param run: a :class:`~pyro_vae.experiment.runs.RunDir`; after every epoch its checkpoint (parameters,
        optimiser and RNG state, history) and ``history.csv`` are written atomically.
    :param resume: continue from ``run``'s checkpoint up to ``epochs`` in total; the result is the
        same as an uninterrupted run with the same settings.
    :param lr_schedule: a :class:`~pyro_vae.inference.schedules.Schedule`; epoch e trains at
        ``lr_schedule.lr(e, lr)`` (None: ``lr`` throughout).
    :param eps: Adam's epsilon.
    :param elbo: a Pyro ELBO, or :class:`~pyro_vae.inference.em.EM`, which runs one EM iteration on all
        training rows per epoch (``batch_size`` is then ignored).
    :param beta, kl_warmup: weight the latent sites by ``kl_scale(epoch, beta, kl_warmup)`` (see
        :func:`~pyro_vae.inference.objectives.kl_scale`); ``train_loss`` is then that weighted
        objective, while the test ELBO stays the unweighted ELBO.
    :returns: the history, a list of per-epoch dicts (nats per data point).
    :param keep_epochs: epochs whose model ``run`` also keeps as a snapshot (``run.save_snapshot``),
        e.g. the ends of a schedule's stages.
    :param distributed: a :class:`~pyro_vae.inference.distributed.Distributed` job (torchrun): each
        of its R processes scores B rows of every global batch of R x B rows and the gradients are
        averaged, exactly the update of one process with batch R x B. Rank 0 alone writes ``run``
        and prints; pass ``run`` on every rank (the others only read it on resume).
    :param callbacks: objects with ``on_epoch_end(epoch, row, vae)``, called (on rank 0) after each
        epoch's history row and checkpoint, e.g. the command line's TensorBoard and MLflow loggers.
        They must not draw from torch's random stream (fork it), or training would change.
    :param str step: how each step computes the loss and its gradients: ``"compiled"`` (a graph
        captured from the model and guide once per minibatch shape and compiled with inductor),
        ``"captured"`` (the same graph, without inductor) or ``"eager"`` (Pyro's interpreter on every
        step). The three train on the same random draws; ``"captured"`` equals ``"eager"`` bit for
        bit, ``"compiled"`` to float rounding. Objectives without a graph form (``enum``, ``em``, the
        ``jit-*`` ones) always run their own way; programs that cannot be captured run eagerly after one
        :class:`~pyro_vae.inference.compiled.CompiledStepWarning` (see :mod:`~pyro_vae.inference.compiled`).
    :raises TrainingDiverged: on a NaN/inf loss; the previous epoch's checkpoint stays. A loss that
        grows by orders of magnitude without reaching NaN warns once
        (:class:`~pyro_vae.inference.divergence.DivergenceWarning`).

    Each history row records the epoch's learning rate (``lr``, after the schedule) and gradient
    clipping (``clip_norm``, NaN when off) beside the losses, so a run resumed with other settings
    keeps a true record of every epoch.

    Example::

        >>> import pyro, pyro_vae as pv
        >>> data = pv.load_dataset("digits", binarize="static")
        >>> pyro.set_rng_seed(0)
        >>> lik, post = pv.Bernoulli(), pv.DiagonalNormal()
        >>> vae = pv.VAE(pv.MLP(64, [32], post.num_params(4)), pv.MLP(4, [32], lik.num_params(64)),
        ...              prior=pv.StandardNormal(4), likelihood=lik, posterior=post)
        >>> history = pv.fit(vae, data, pv.make_elbo("meanfield"), epochs=3, quiet=True)
        >>> [row["epoch"] for row in history], history[-1]["test_elbo"] > history[0]["test_elbo"]
        ([1, 2, 3], True)
    """
    device = next(vae.parameters()).device
    check_mode(step, "step")
    quiet = quiet or not distributed.is_main
    data = data.to(device)  # on a GPU the whole training set stays there: no copy per minibatch
    state = TrainState(vae, lr, betas, eps, device)
    if resume:
        state.load(vae, run.load_checkpoint(map_location=device), lr, betas, eps, distributed)
    else:
        state.seed(seed, distributed)
        distributed.broadcast_parameters(vae)
    num_data = data.num_train
    if is_closed_form(elbo):  # EM: one iteration per epoch, on every training row at once
        if distributed.active:
            raise UserError("em runs in one process: its M-step needs every training row's posterior at once; "
                            "train it without torchrun", param="elbo")
        batch_size = num_data
    if uses_analytic_kl(elbo) and distributed.is_main:  # Pyro samples an unregistered KL silently; say so
        warn_sampled_kl(vae.model, vae.guide, data.served_sample(min(batch_size, num_data)).to(device),
                        num_data=num_data)
    global_batch = batch_size * distributed.world_size  # every rank scores batch_size rows of it
    drop_last = is_jit(elbo) and num_data > global_batch  # a JIT graph is traced for one batch shape
    steps_per_epoch = num_data // global_batch if drop_last else math.ceil(num_data / global_batch)
    compiler = JitCompiler(vae, elbo, data.x_train[: min(batch_size, num_data)].round().to(device), num_data)
    compiler.ensure(kl_kwargs(state.epoch + 1, beta, kl_warmup))
    state.restore_rng()  # after compiling, so compilation's draws do not shift the stream
    graph = GraphLoss(vae, elbo, state.params, num_data, mode=step, kl_input=beta != 1.0 or bool(kl_warmup))
    svi_step = SVIStep(vae, elbo, state.optimizer, num_data, clip_norm, distributed if distributed.active else None,
                       graph=graph)
    watch = DivergenceWatch(state.history[0]["train_loss"] if state.history else None, lr)

    bar = tqdm(total=(epochs - state.epoch) * steps_per_epoch, disable=quiet or not sys.stderr.isatty(),
               unit="step", dynamic_ncols=True)
    for epoch in range(state.epoch + 1, epochs + 1):
        scale = kl_kwargs(epoch, beta, kl_warmup)
        compiler.ensure(scale)  # a new kl_scale is a new graph
        epoch_lr = lr_schedule.lr(epoch, lr) if lr_schedule is not None else lr
        state.set_lr(epoch_lr)
        vae.train()
        t0, losses = time.perf_counter(), []
        for xg in data.batches(global_batch, state.data_rng, drop_last=drop_last):
            xb, weight = distributed.shard(xg)
            loss = svi_step(xb.to(device), scale, weight)
            if not math.isfinite(loss):
                bar.close()
                raise _diverged(loss, epoch, len(losses) + 1, run)
            losses.append(loss)
            if distributed.is_main:
                watch(loss, epoch, len(losses))
            bar.update()
            bar.set_postfix(epoch=epoch, loss=f"{statistics.fmean(losses[-20:]):.2f}")
        row = _epoch_row(vae, data, epoch, losses, time.perf_counter() - t0, eval_batch_size, distributed)
        row.update(lr=float(epoch_lr), clip_norm=float(clip_norm) if clip_norm else math.nan)
        state.history.append(row)
        state.epoch = epoch
        if not quiet:
            tqdm.write(_epoch_line(row, state.history, epochs), file=sys.stdout)
        checkpoint = state.checkpoint(vae, distributed) if run is not None else None  # every rank: a collective
        if run is not None and distributed.is_main:
            run.save_checkpoint(checkpoint)
            run.write_history(state.history)
            if epoch in keep_epochs:
                run.save_snapshot(checkpoint)
        for callback in callbacks if distributed.is_main else ():
            callback.on_epoch_end(epoch, row, vae)
    bar.close()
    return state.history


def _epoch_row(vae, data, epoch, losses, seconds, eval_batch_size, distributed=SINGLE):
    """The history row of ``epoch``: mean training loss, and the test ELBO with its terms."""
    vae.eval()
    t0 = time.perf_counter()
    test = evaluate_elbo(vae, data.x_test, eval_batch_size, distributed)
    return {"epoch": epoch, "train_loss": statistics.fmean(losses), "test_elbo": test["elbo"],
            "test_reconstruction": test["reconstruction"], "test_kl": test["kl"],
            "seconds": seconds, "eval_seconds": time.perf_counter() - t0}


def _epoch_line(row, history, epochs):
    return (f"epoch {row['epoch']:3d}  train loss {row['train_loss']:9.3f}  test ELBO {row['test_elbo']:9.3f} "
            f"(rec {row['test_reconstruction']:9.3f}, KL {row['test_kl']:7.3f})  {row['seconds']:6.2f}s  "
            f"nats/point{_eta(history, epochs)}")


def _eta(history, epochs):
    """``  ETA 1h02m`` from the median of the last epochs' seconds, or "" when done."""
    left = epochs - int(history[-1]["epoch"])
    if left <= 0:
        return ""
    recent = [r["seconds"] + r["eval_seconds"] for r in history[-20:]]
    secs = int(statistics.median(recent) * left)
    return f"  ETA {secs // 3600}h{secs % 3600 // 60:02d}m"


def _diverged(loss, epoch, step, run):
    where = f"the checkpoint of epoch {epoch - 1} in {run.path}" if run and epoch > 1 else "no checkpoint"
    return TrainingDiverged(f"loss became {loss} at epoch {epoch}, step {step}; kept {where}; "
                            "resume with a lower lr=LR or with clip_norm=NORM", param=("lr", "clip_norm"))

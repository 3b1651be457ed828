"""``fit``: the SVI loop with Adam, per-epoch history, atomic checkpoints, resume and a NaN guard."""

import math
import statistics
import sys
import time
import warnings

import torch
from tqdm.auto import tqdm

from .errors import UserError
from .estimators import uses_analytic_kl, warn_sampled_kl
from .objectives import is_jit, kl_scale
from .terms import elbo_terms


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@torch.no_grad()
def evaluate_elbo(vae, x, batch_size=1000):
    """Mean one-sample ELBO per data point of ``x`` and its terms (analytic KL where registered)."""
    device = next(vae.parameters()).device
    totals = {"elbo": 0.0, "reconstruction": 0.0, "kl": 0.0}
    for start in range(0, len(x), batch_size):
        terms = elbo_terms(vae.model, vae.guide, x[start : start + batch_size].to(device))
        for k in totals:
            totals[k] += terms[k].double().sum().item()
    return {k: v / len(x) for k, v in totals.items()}


def fit(vae, data, elbo, epochs=10, batch_size=128, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
        lr_schedule=None, clip_norm=None, seed=0, run=None, resume=False, quiet=False, eval_batch_size=1000, beta=1.0, kl_warmup=0):
    """Train ``vae`` on ``data`` (a :class:`~pyro_vae.data.Dataset`) by maximising ``elbo``.

    Each step draws a minibatch of B rows, estimates the full-data ELBO (the ``"data"`` plate
    scales by N / B), backpropagates and takes an Adam step on every parameter of ``vae``.

    :param run: a :class:`~pyro_vae.runs.RunDir`; after every epoch its checkpoint (parameters,
        optimiser and RNG state, history) and ``history.csv`` are written atomically.
    :param resume: continue from ``run``'s checkpoint up to ``epochs`` in total; the result is the
        same as an uninterrupted run with the same settings.
    :param lr_schedule: a :class:`~pyro_vae.schedules.Schedule`; epoch e trains at
        ``lr_schedule.lr(e, lr)`` (None: ``lr`` throughout).
    :param beta, kl_warmup: weight the latent sites by ``kl_scale(epoch, beta, kl_warmup)`` (see
        :func:`~pyro_vae.objectives.kl_scale`); ``train_loss`` is then that weighted objective, while
        the test ELBO stays the unweighted ELBO.
    :returns: the history, a list of per-epoch dicts (nats per data point).
    :raises TrainingDiverged: on a NaN/inf loss; the previous epoch's checkpoint stays.
    """
    device = next(vae.parameters()).device
    params = [p for p in vae.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps)
    data_rng = torch.Generator()
    history, start_epoch = [], 0
    if resume:
        state = run.load_checkpoint(map_location=device)
        vae.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for group in optimizer.param_groups:  # a resumed run may lower lr (e.g. after a NaN)
            group["lr"], group["betas"], group["eps"] = lr, tuple(betas), eps
        history, start_epoch = list(state["history"]), int(state["epoch"])
    else:
        torch.manual_seed(seed)
        data_rng.manual_seed(seed)
    num_data = data.num_train
    if uses_analytic_kl(elbo):  # Pyro samples an unregistered KL silently; say so, once per fit
        warn_sampled_kl(vae.model, vae.guide, data.served_sample(min(batch_size, num_data)).to(device),
                        num_data=num_data)
    drop_last = is_jit(elbo) and num_data > batch_size  # a JIT graph is traced for one batch shape
    steps_per_epoch = num_data // batch_size if drop_last else math.ceil(num_data / batch_size)
    compile_batch = data.x_train[: min(batch_size, num_data)].round().to(device)
    compiled_kwargs = _kl_kwargs(start_epoch + 1, beta, kl_warmup)
    if is_jit(elbo):
        _compile(vae, elbo, compile_batch, num_data, **compiled_kwargs)
    if resume:  # restore RNG after compiling, so compilation's draws do not shift the stream
        _set_rng_state(state["rng"], data_rng)

    bar = tqdm(total=(epochs - start_epoch) * steps_per_epoch, disable=quiet or not sys.stderr.isatty(),
               unit="step", dynamic_ncols=True)
    for epoch in range(start_epoch + 1, epochs + 1):
        kl_kwargs = _kl_kwargs(epoch, beta, kl_warmup)
        if is_jit(elbo) and kl_kwargs != compiled_kwargs:  # a new kl_scale is a new graph; compile
            _compile(vae, elbo, compile_batch, num_data, **kl_kwargs)  # outside the RNG stream, so
            compiled_kwargs = kl_kwargs  # a resumed run draws exactly what an uninterrupted one does
        if lr_schedule is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_schedule.lr(epoch, lr)
        vae.train()
        t0, losses = time.perf_counter(), []
        for xb in data.batches(batch_size, data_rng, drop_last=drop_last):
            optimizer.zero_grad(set_to_none=True)
            loss = _loss_and_grads(elbo, vae, xb.to(device), num_data, kl_kwargs) / num_data
            if not math.isfinite(loss):
                bar.close()
                raise _diverged(loss, epoch, len(losses) + 1, run)
            if clip_norm:
                torch.nn.utils.clip_grad_norm_(params, clip_norm)
            optimizer.step()
            losses.append(loss)
            bar.update()
            bar.set_postfix(epoch=epoch, loss=f"{statistics.fmean(losses[-20:]):.2f}")
        seconds = time.perf_counter() - t0
        vae.eval()
        t1 = time.perf_counter()
        test = evaluate_elbo(vae, data.x_test, eval_batch_size)
        row = {"epoch": epoch, "train_loss": statistics.fmean(losses), "test_elbo": test["elbo"],
               "test_reconstruction": test["reconstruction"], "test_kl": test["kl"],
               "seconds": seconds, "eval_seconds": time.perf_counter() - t1}
        history.append(row)
        if not quiet:
            tqdm.write(f"epoch {epoch:3d}  train loss {row['train_loss']:9.3f}  test ELBO "
                       f"{row['test_elbo']:9.3f} (rec {row['test_reconstruction']:9.3f}, KL "
                       f"{row['test_kl']:7.3f})  {seconds:6.2f}s  nats/point{_eta(history, epochs)}",
                       file=sys.stdout)
        if run is not None:
            run.save_checkpoint({
                "epoch": epoch, "model": vae.state_dict(), "optimizer": optimizer.state_dict(),
                "rng": _rng_state(data_rng),
                "history": history})
            run.write_history(history)
    bar.close()
    return history


def _eta(history, epochs):
    """``  ETA 1h02m`` from the median of the last epochs' seconds, or "" when done."""
    left = epochs - int(history[-1]["epoch"])
    if left <= 0:
        return ""
    recent = [r["seconds"] + r["eval_seconds"] for r in history[-20:]]
    secs = int(statistics.median(recent) * left)
    return f"  ETA {secs // 3600}h{secs % 3600 // 60:02d}m"


def _loss_and_grads(elbo, vae, xb, num_data, kl_kwargs):
    """The ELBO estimate's loss (backpropagated), or NaN where NaN parameters failed validation."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Encountered NaN")  # fit raises its own error
            return elbo.loss_and_grads(vae.model, vae.guide, xb, num_data=num_data, **kl_kwargs)
    except ValueError as e:  # with validation on, NaN parameters fail distribution checks first
        if "invalid values" not in str(e):
            raise
        return float("nan")


def _diverged(loss, epoch, step, run):
    where = f"the checkpoint of epoch {epoch - 1} in {run.path}" if run and epoch > 1 else "no checkpoint"
    return TrainingDiverged(f"loss became {loss} at epoch {epoch}, step {step}; kept {where}; "
                            "resume with a lower --lr or with --clip-norm")


def _kl_kwargs(epoch, beta, kl_warmup):
    """``{"kl_scale": s}`` for the model and guide in ``epoch``, or ``{}`` when the weight is 1."""
    scale = kl_scale(epoch, beta, kl_warmup)
    return {} if scale is None else {"kl_scale": scale}


def _compile(vae, elbo, xb, num_data, **kwargs):
    """Trace the JIT objective once, outside the training RNG stream and without touching grads."""
    with torch.random.fork_rng():
        elbo.loss_and_grads(vae.model, vae.guide, xb, num_data=num_data, **kwargs)
    for p in vae.parameters():
        p.grad = None


def _rng_state(data_rng):
    state = {"torch": torch.get_rng_state(), "data": data_rng.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state, data_rng):
    torch.set_rng_state(state["torch"].cpu())
    data_rng.set_state(state["data"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])

"""``pyro-vae train``: build the run's data, model and objective from its flags, then ``fit``.

Under ``torchrun`` every process runs this; rank 0 alone locks and writes the run directory and prints.
"""

import dataclasses
import os
import statistics
import sys
import time

import pyro

from ..data import TORCHVISION_DATASETS
from ..errors import UserError, check_int
from ..experiment.build import build_data, build_elbo, build_model, fit_options, model_outline, relative_dataset
from ..experiment.conditional import trainer
from ..experiment.config import TrainConfig
from ..experiment.estimates import train_need
from ..experiment.runs import RunDir, check_writable
from ..inference import distributed as dist
from ..inference.em import is_closed_form
from ..inference.train_state import TrainState
from .options import POSITIVE_ELBO_NOTE, check_resources, given_fields, set_threads

# Settings that may change when a run is resumed: the number of epochs, the optimiser's step size and
# clipping (recorded: config.json's "changes", history.csv's lr and clip_norm per epoch), which epochs
# are kept, and where and how the computation runs. Everything else defines the model or the
# objective: changing it is a new run.
RESUMABLE = {"epochs", "lr", "lr_schedule", "clip_norm", "keep_epochs", "device", "threads", "data_dir", "step"}

# Flags that only one model uses: given with another model they would be ignored, so they are refused.
MODEL_FLAGS = {"sparsity": "sparse-ae", "contraction": "contractive-ae", "labels": "m2", "alpha_scale": "m2"}


def run_command(args):
    """The ``train`` subcommand (see :func:`pyro_vae.cli.parser.add_train_parser`).

    Everything is checked before anything is written: the flags, the specs, the data, the model
    against the data and the objective, and the resources (:mod:`pyro_vae.experiment.guard`); only
    then is the run directory created (a new run) or locked (a resumed one). A resumed run rewrites
    its ``config.json`` after its first new epoch is saved, never before.
    """
    given = given_fields(args)
    if args.log:  # an unknown tool or a missing package is refused before anything is read or written
        from .tracking import check_log_spec  # imported only when asked: it loads the plotting helpers

        check_log_spec(args.log)
    check_int("log_images", args.log_images, least=0)
    if args.resume:
        if args.out:
            raise UserError("give either --out (a new run) or --resume DIR, not both")
        run = RunDir(args.resume)
        fixed = sorted(set(given) - RESUMABLE)
        if fixed:
            flag = "--" + fixed[0].replace("_", "-")
            raise UserError(f"{flag} cannot change on --resume: it defines the model or its objective, and the run's "
                            f"record would no longer be true; train a new run with --out NEW_DIR (the settings of "
                            f"{run.file('config.json')} and the new {flag}); --resume takes only "
                            f"{', '.join('--' + k.replace('_', '-') for k in sorted(RESUMABLE))}")
        device = given.get("device") or run.config().device  # a missing or corrupt run is refused here
        job = dist.from_environment(device)
        if job.is_main:
            check_writable(run.path)
            run.lock()  # one writer at a time; released below, or by the OS when the process dies
        config = None  # read again under the lock, below
    else:
        config = TrainConfig(**given).validate()
        job = dist.from_environment(config.device)
        run = RunDir(args.out or _default_out())
        if job.is_main:
            run.check_new()  # refuse before loading data; the directory is created only when training starts
        config.dataset = relative_dataset(config.dataset, run.path)  # a relative npz: relative to the run
    finished = False
    try:
        status = _train(args, given, run, config or run.config(), job)
        finished = status == 0  # not after an interrupt: the ranks may have stopped at different points
        return status
    finally:
        if job.is_main:
            run.unlock()
        dist.shutdown(synchronize=finished)


def _train(args, given, run, config, job):
    quiet = args.quiet or not job.is_main
    for name, model in MODEL_FLAGS.items():
        if name in given and config.model != model:
            raise UserError(f"--{name} applies only to --model {model}, not {config.model}; drop it")
    if "channels" in given and config.arch != "conv":
        raise UserError(f"--channels applies only to --arch conv, not {config.arch}; drop it or add --arch conv")
    for name in ("data_dir", "download"):
        if name in given and config.dataset not in TORCHVISION_DATASETS:
            raise UserError(f"--{name.replace('_', '-')} applies only to --dataset {', '.join(TORCHVISION_DATASETS)}, "
                            f"not {config.dataset}; drop it")
    state, done = None, 0
    if args.resume:
        if run.has_checkpoint():
            state = run.load_checkpoint()  # fail early, before any data loading, on a bad checkpoint
            done = int(state["epoch"])
        changed = {k: v for k, v in given.items() if k in RESUMABLE}
        config = (config.record_changes(changed, done + 1) if done else dataclasses.replace(config, **changed))
        config.validate()
        if state is not None:
            if config.epochs < done:
                raise UserError(f"the run in {run.path} is already at epoch {done}, past --epochs {config.epochs}; "
                                f"nothing was changed (give --epochs above {done} to train on)")
            if config.epochs == done:
                if not quiet:
                    print(f"the run in {run.path} has finished its {done} epochs; nothing to train, nothing changed "
                          "(raise --epochs to continue it)")
                return 0
        elif not quiet:
            print(f"no epoch of the run in {run.path} finished: training it from the start with its config.json")
    set_threads(config.threads)
    data = build_data(config, base=run.path)
    outline = model_outline(config, data)  # the model's shapes on no memory (torch's meta device)
    if "elbo" not in given and not args.resume:  # a resumed run keeps the objective in its config
        default = outline.default_elbo or (None if outline.mean_field_guide else "trace")
        if default is not None:  # e.g. a mixture: em or enum; vae2: meanfield would be refused for its guide
            config.elbo = default
            if not quiet:
                print(f"--model {config.model}: training with --elbo {config.elbo}")
    objective = build_elbo(config)
    check_resources(train_need(outline, data.num_train, len(data.x_test), config.batch_size, objective.num_particles,
                               config.epochs - done, config.elbo, is_closed_form(objective), model_spec=config.model),
                    config.device, force=args.force)
    pyro.set_rng_seed(config.seed)
    vae = build_model(config, data, local_rank=job.local_rank)
    elbo = build_elbo(config, vae)
    train = trainer(config, vae)  # fit, or M2's semi-supervised loop (its options checked here)
    if state is not None:  # a config edited to another model is refused before anything is written
        TrainState(vae, config.lr, config.betas, config.adam_eps).load(vae, state, config.lr, config.betas,
                                                                        config.adam_eps, job)
    options = fit_options(config)  # the schedule and the kept epochs: parsed before anything is written
    if job.is_main and not args.resume:
        run.create(config)
    if not quiet:
        processes = f", {job.world_size} processes" if job.active else ""
        labels = f" + {data.label_columns} label columns" if data.label_columns else ""
        print(f"training {config.model} on {data.name} ({data.num_train} train / {len(data.x_test)} test, "
              f"D={data.x_dim}{labels}, binarize={data.binarize}) with {config.elbo}{processes}; "
              f"run directory {run.path}")
    callbacks = [ConfigRecord(run, config)] if args.resume and job.is_main else []
    if args.log and job.is_main:
        from .tracking import make_logger

        callbacks.append(make_logger(args.log, run, data, config, args.log_images))
    try:
        history = train(vae, data, elbo, run=run, resume=state is not None, quiet=quiet, distributed=job,
                      callbacks=callbacks, **options)
    except KeyboardInterrupt:
        if job.is_main:
            saved = "the last finished epoch is saved" if run.has_checkpoint() else "no epoch finished"
            print(f"pyro-vae: interrupted; {saved} in {run.path}: continue with "
                  f"pyro-vae train --resume {run.path}", file=sys.stderr)
        return 130
    finally:
        for callback in callbacks:
            callback.close()
    if not job.is_main:
        return 0
    summary = _summary(config, data, vae, history)
    run.write_json("summary.json", summary)
    if not quiet:
        print(f"test ELBO {summary['test_elbo']:.3f} nats per image after {summary['epochs']} epochs "
              f"({summary['seconds_per_epoch_median']:.2f} s/epoch)")
        if summary["test_elbo"] > 0:
            print(POSITIVE_ELBO_NOTE)
    print(f"run directory: {run.path}")
    return 0


class ConfigRecord:
    """``fit``'s callback that rewrites a resumed run's ``config.json`` (its new settings and their
    ``changes``) once, after the first new epoch's checkpoint is saved: a resume that fails before
    (a full disk, a bad flag, Ctrl-C) leaves the file as it was, describing the checkpoint."""

    def __init__(self, run, config):
        self.run, self.config, self.done = run, config, False

    def on_epoch_end(self, epoch, row, vae):
        if not self.done:
            self.run.write_json("config.json", self.config.to_dict())
            self.done = True

    def close(self):
        pass


def _summary(config, data, vae, history):
    last = history[-1]
    return {
        "units": "nats per data point (higher ELBO is better)",
        "dataset": data.name, "num_train": data.num_train, "num_test": len(data.x_test),
        "epochs": int(last["epoch"]), "train_loss": last["train_loss"], "test_elbo": last["test_elbo"],
        "test_reconstruction": last["test_reconstruction"], "test_kl": last["test_kl"],
        "seconds_per_epoch_median": statistics.median(r["seconds"] for r in history),
        "seconds_total": sum(r["seconds"] + r["eval_seconds"] for r in history),
        "num_parameters": sum(p.numel() for p in vae.parameters()),
        "config": config.to_dict(),
        **({"test_error": last["test_error"]} if "test_error" in last else {}),  # M2's classifier q(y | x)
    }


def _default_out():
    return os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))

"""``pyro-vae train``: build the run's data, model and objective from its flags, then ``fit``."""

import os
import statistics
import sys
import time

import pyro

from ..errors import UserError
from ..inference.train import fit
from .build import build_data, build_elbo, build_model, fit_options
from .config import TrainConfig
from .options import given_fields, set_threads
from .runs import RunDir

# Flags that may change when a run is resumed: they do not change the model being trained.
RESUMABLE = {"epochs", "lr", "lr_schedule", "clip_norm", "quiet", "device", "threads", "data_dir"}


def run_command(args):
    """The ``train`` subcommand (see :func:`pyro_vae.cli.parser.add_train_parser`)."""
    given = given_fields(args)
    if args.resume:
        if args.out:
            raise UserError("give either --out (a new run) or --resume DIR, not both")
        run = RunDir(args.resume)
        fixed = sorted(set(given) - RESUMABLE)
        if fixed:
            raise UserError(f"--{fixed[0].replace('_', '-')} cannot change on --resume (it defines the model); "
                            f"only {', '.join('--' + k.replace('_', '-') for k in sorted(RESUMABLE))} can")
        config = run.config()
        for k, v in given.items():
            setattr(config, k, v)
        config.validate()
        run.load_checkpoint()  # fail early, before any data loading, on a bad checkpoint
    else:
        config = TrainConfig(**given).validate()
        run = RunDir(args.out or _default_out())
    set_threads(config.threads)
    data = build_data(config)
    pyro.set_rng_seed(config.seed)
    vae = build_model(config, data)
    if "elbo" not in given and not vae.mean_field_guide:
        config.elbo = "trace"  # the default meanfield would be refused for this guide
        if not args.quiet:
            print(f"--model {config.model}: its guide is not mean-field, training with --elbo trace")
    if "elbo" not in given and not args.resume and vae.default_elbo is not None:
        config.elbo = vae.default_elbo  # e.g. a mixture: em where EM applies, else enum
        if not args.quiet:
            print(f"--model {config.model}: training with --elbo {config.elbo}")
    elbo = build_elbo(config, vae)
    if not args.resume:
        run.create(config)
    else:  # epochs, lr, ... may have changed: record what this run now is
        run.write_json("config.json", config.to_dict())
    if not args.quiet:
        print(f"training {config.model} on {data.name} ({data.num_train} train / {len(data.x_test)} test, "
              f"D={data.data_dim}, binarize={data.binarize}) with {config.elbo}; run directory {run.path}")
    try:
        history = fit(vae, data, elbo, run=run, resume=bool(args.resume), quiet=args.quiet, **fit_options(config))
    except KeyboardInterrupt:
        print(f"pyro-vae: interrupted; the last finished epoch is saved in {run.path}: continue with "
              f"pyro-vae train --resume {run.path}", file=sys.stderr)
        return 130
    summary = _summary(config, data, vae, history)
    run.write_json("summary.json", summary)
    if not args.quiet:
        print(f"test ELBO {summary['test_elbo']:.3f} nats per image after {summary['epochs']} epochs "
              f"({summary['seconds_per_epoch_median']:.2f} s/epoch)")
    print(f"run directory: {run.path}")
    return 0


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
    }


def _default_out():
    return os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))

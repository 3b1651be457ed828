"""What ``--log tensorboard | mlflow`` costs a training run: per-epoch callback time against the epoch.

Trains the same model (default: the ``make demo`` VAE on mnist5k, the shortest epochs the docs
shows, so the worst case for a per-epoch cost) with no logger, TensorBoard and MLflow in interleaved
rounds, and times (a) each logger's ``on_epoch_end`` (scalars every epoch, image grids every
``--log-images`` epochs), (b) the training part of each epoch (the steps), (c) the whole ``fit``.
The first ``--warmup`` rounds are not counted. The overhead per step is the logger's time per epoch
divided by the epoch's training time (the steps'), since a logger runs once per epoch.

    python scripts/benchmark_logging.py [--epochs 10] [--rounds 3] [--log-images 5] [--threads 1]
        [--dataset D --arch A --likelihood L --binarize B]
"""

import argparse
import os
import statistics
import tempfile
import time

import pyro
import torch

from pyro_vae.cli.tracking import check_log_spec, make_logger
from pyro_vae.experiment.build import build_data, build_elbo, build_model, fit_options
from pyro_vae.experiment.config import TrainConfig
from pyro_vae.experiment.runs import RunDir
from pyro_vae.inference.train import fit


class Timed:
    """Wraps a logger and records the seconds of each ``on_epoch_end``."""

    def __init__(self, inner):
        self.inner, self.seconds = inner, []

    def on_epoch_end(self, epoch, row, vae):
        t0 = time.perf_counter()
        self.inner.on_epoch_end(epoch, row, vae)
        self.seconds.append((epoch, time.perf_counter() - t0))

    def close(self):
        self.inner.close()


def one_run(config, data, tool, log_images, folder):
    pyro.clear_param_store()
    pyro.set_rng_seed(config.seed)
    vae = build_model(config, data)
    run = RunDir(os.path.join(folder, f"{tool}-{time.perf_counter_ns()}"))
    run.create(config)
    callbacks = [Timed(make_logger(tool, run, data, config, log_images))] if tool != "none" else []
    t0 = time.perf_counter()
    history = fit(vae, data, build_elbo(config, vae), run=run, quiet=True, callbacks=callbacks, **fit_options(config))
    wall = time.perf_counter() - t0
    for c in callbacks:
        c.close()
    return history, wall, callbacks[0].seconds if callbacks else []


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1, help="rounds run first and not counted (imports, caches)")
    p.add_argument("--log-images", type=int, default=5)
    p.add_argument("--tools", nargs="+", default=["none", "tensorboard", "mlflow"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--arch", default="mlp")
    p.add_argument("--likelihood", default="bernoulli")
    p.add_argument("--binarize", default="dynamic")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    for tool in args.tools:
        if tool != "none":
            check_log_spec(tool)
    config = TrainConfig(dataset=args.dataset, arch=args.arch, likelihood=args.likelihood, binarize=args.binarize,
                         epochs=args.epochs, threads=args.threads).validate()
    data = build_data(config)
    results = {tool: {"wall": [], "train": [], "scalars": [], "images": []} for tool in args.tools}
    with tempfile.TemporaryDirectory() as folder:
        for r in range(-args.warmup, args.rounds):
            for tool in args.tools:  # interleaved: each round runs every tool once
                history, wall, seconds = one_run(config, data, tool, args.log_images, folder)
                if r < 0:
                    continue
                res = results[tool]
                res["wall"].append(wall)
                res["train"] += [row["seconds"] for row in history]
                for epoch, s in seconds:
                    res["images" if epoch % args.log_images == 0 or epoch == args.epochs else "scalars"].append(s)
                print(f"round {r + 1} {tool}: fit {wall:.2f} s", flush=True)
    train_epoch = statistics.median(s for res in results.values() for s in res["train"])
    steps = -(-data.num_train // config.batch_size)
    print(f"\n{args.dataset}, {args.arch}, {args.epochs} epochs x {steps} steps, {args.rounds} interleaved rounds, "
          f"{args.threads} thread(s); median training time of an epoch {train_epoch:.3f} s")
    print("| logger | fit wall clock (median) | vs none | callback, scalar epoch (median) | callback, image epoch "
          "(median) | mean callback per epoch / epoch's steps |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    base = statistics.median(results[args.tools[0]]["wall"])
    for tool, res in results.items():
        wall = statistics.median(res["wall"])
        per_epoch = (sum(res["scalars"]) + sum(res["images"])) / max(1, len(res["scalars"]) + len(res["images"]))
        cells = [f"{statistics.median(res[k]) * 1000:.1f} ms" if res[k] else "-" for k in ("scalars", "images")]
        print(f"| {tool} | {wall:.2f} s | {wall / base:.3f}x | {cells[0]} | {cells[1]} | "
              f"{per_epoch / train_epoch:.2%} |")


if __name__ == "__main__":
    main()

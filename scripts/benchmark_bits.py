"""MNIST at 8 bits: a convolutional and an MLP VAE with the discretised logistic, in bits per dimension.

Both are trained by ``pyro-vae train`` with the same budget (data, epochs, batch, learning rate,
latent size, seed) on grey levels (``--binarize none``, ``--likelihood dlogistic``) and scored by
``pyro-vae evaluate`` (L_S with S importance samples per test image); the table gives the test ELBO
and L_S in nats and in bits/dim, and the median seconds per training epoch.

    python scripts/benchmark_bits.py --data ../shared/data/mnist.npz --out DIR [--train-images 10000]
        [--test-images 1000] [--epochs 10] [--num-samples 100] [--threads 1]

The subset (a seeded permutation of each split) is written to ``DIR/mnist8-subset.npz``.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

ARCHS = {  # name: the flags that differ
    "conv": ["--arch", "conv", "--channels", "32,64", "--hidden", "400"],
    "mlp": ["--arch", "mlp", "--hidden", "400"],
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="an npz with uint8 x_train, x_test (e.g. ../shared/data/mnist.npz)")
    p.add_argument("--out", required=True, help="folder for the subset and the run directories")
    p.add_argument("--train-images", type=int, default=10000)
    p.add_argument("--test-images", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--latent-dim", type=int, default=32)
    p.add_argument("--likelihood", default="dlogistic")
    p.add_argument("--num-samples", type=int, default=100, help="importance samples per test image (L_S)")
    p.add_argument("--only", nargs="+", choices=list(ARCHS), default=list(ARCHS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from pyro_vae.cli.parser import main as cli

    os.makedirs(args.out, exist_ok=True)
    subset = os.path.join(args.out, "mnist8-subset.npz")
    rng = np.random.default_rng(0)
    with np.load(args.data) as f:
        train = f["x_train"][rng.permutation(len(f["x_train"]))[: args.train_images]]
        test = f["x_test"][rng.permutation(len(f["x_test"]))[: args.test_images]]
    np.savez(subset, x_train=train, x_test=test)
    rows = []
    for name in args.only:
        run = os.path.join(args.out, name)
        flags = ["train", "--dataset", f"npz:{subset}", "--binarize", "none", "--likelihood", args.likelihood,
                 "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
                 "--latent-dim", str(args.latent_dim), "--seed", str(args.seed), "--threads", str(args.threads),
                 "--out", run, "--quiet", *ARCHS[name]]
        print("pyro-vae", " ".join(flags), flush=True)
        t0 = time.perf_counter()
        if cli(flags) != 0:
            sys.exit(f"training {name} failed")
        train_seconds = time.perf_counter() - t0
        if cli(["evaluate", run, "--num-samples", str(args.num_samples), "--threads", str(args.threads),
                "--no-representation", "--quiet"]) != 0:
            sys.exit(f"evaluating {name} failed")
        with open(os.path.join(run, "eval.json")) as f:
            report = json.load(f)
        with open(os.path.join(run, "summary.json")) as f:
            summary = json.load(f)
        rows.append(dict(arch=name, params=summary["num_parameters"], epochs=summary["epochs"],
                         seconds_per_epoch=summary["seconds_per_epoch_median"], train_seconds=train_seconds,
                         elbo=report["elbo"], log_likelihood=report["log_likelihood"],
                         stderr=report["stderr"]["log_likelihood"], bpd=report["bits_per_dim"],
                         bpd_elbo=report["bits_per_dim_elbo"], bpd_stderr=report["bits_per_dim_stderr"],
                         khat_median=report["khat"]["median"], active_units=report["active_units"]))
    print(f"\nMNIST at 8 bits ({args.train_images} train / {args.test_images} test images, {args.epochs} epochs, "
          f"batch {args.batch_size}, lr {args.lr:g}, Z = {args.latent_dim}, --likelihood {args.likelihood}, "
          f"S = {args.num_samples}, {args.threads} thread(s))")
    print("| arch | parameters | s/epoch (median) | test ELBO (nats) | L_S (nats, +- se) | bits/dim ELBO | "
          "bits/dim L_S (+- se) | k-hat median | active units |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['arch']} | {r['params']:,} | {r['seconds_per_epoch']:.1f} | {r['elbo']:.2f} | "
              f"{r['log_likelihood']:.2f} (+- {r['stderr']:.2f}) | {r['bpd_elbo']:.4f} | "
              f"{r['bpd']:.4f} (+- {r['bpd_stderr']:.4f}) | {_num(r['khat_median'])} | {r['active_units']} |")
    print(f"(median of {statistics.median(r['train_seconds'] for r in rows):.0f} s of training per model)")
    with open(os.path.join(args.out, "benchmark_bits.json"), "w") as f:
        json.dump(rows, f, indent=1)


def _num(value):
    return "n/a" if value is None else f"{value:.2f}"  # k-hat is null in eval.json when infinite


if __name__ == "__main__":
    main()

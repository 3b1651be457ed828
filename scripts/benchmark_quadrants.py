"""Structured output prediction on MNIST: -log p(x_hidden | x_visible) with Q = 1, 2, 3 visible quadrants,
the conditional VAE (importance-weighted, with its k-hat verdict and AIS) beside the deterministic baseline.

Pyro's ``cvae`` example (after Sohn, Lee & Yan 2015) reports, per Q, the baseline network's masked
cross-entropy and, for the CVAE, -ELBO with the recognition network (10 particles): an upper bound on
-log p(x_h | x_v) of unknown slack. Here the same kind of model (``pyro-vae train --model cvae-quadrants:Q``:
prior network p(z | x_v), recognition network q(z | x), decoder p(x_h | x_v, z), baseline x_v -> x_h, all
with two hidden layers of 500 ReLU units as the example's, Z = 200, Adam 1e-3, batch 128; the baseline is
trained on the same minibatches) is scored by ``pyro-vae evaluate``: the ELBO, L_S with S importance
samples from the recognition network, the Pareto k-hat verdict, and AIS on the first images.

Data: full MNIST from an npz (``--data``), dynamically binarised (the example models grey levels with a
Bernoulli, which is not a density on [0, 1]; binarising makes every number a log-probability). Each run
lives in ``OUT/q{Q}/`` (the ``pyro-vae`` run directory: checkpoint after every epoch); rerunning the
script resumes unfinished runs and re-evaluates. The table goes to ``OUT/results.md`` and ``results.json``,
and each run directory gets ``quadrants.png`` (inputs / truth / baseline / CVAE samples).

    python scripts/benchmark_quadrants.py --epochs 10 --out /tmp/quadrants
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "..", "..", "shared", "data", "mnist.npz")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA, help="MNIST npz (x_train, x_test)")
    p.add_argument("--quadrants", default="1,2,3", help="visible quadrants, comma-separated")
    p.add_argument("--epochs", type=int, default=10, help="training epochs per Q")
    p.add_argument("--latent-dim", type=int, default=200, help="Z (the example's 200)")
    p.add_argument("--hidden", default="500,500", help="hidden layers of every network")
    p.add_argument("--num-samples", type=int, default=1000, help="S importance samples per test image")
    p.add_argument("--max-images", type=int, default=1000, help="test images scored (the first ones)")
    p.add_argument("--ais-steps", type=int, default=200, help="AIS steps (0: no AIS)")
    p.add_argument("--ais-images", type=int, default=50, help="test images AIS scores")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs-quadrants")
    return p.parse_args(argv)


def pyro_vae(*args):
    cmd = [sys.executable, "-m", "pyro_vae", *map(str, args)]
    print("$ pyro-vae " + " ".join(map(str, args)), flush=True)
    subprocess.run(cmd, check=True)


def run_one(args, q):
    out = os.path.join(args.out, f"q{q}")
    t0 = time.time()
    if os.path.exists(os.path.join(out, "checkpoint.pt")):
        pyro_vae("train", "--resume", out, "--epochs", args.epochs, "--threads", args.threads)
    else:
        pyro_vae("train", "--model", f"cvae-quadrants:{q}", "--dataset", f"npz:{os.path.abspath(args.data)}",
                 "--hidden", args.hidden, "--latent-dim", args.latent_dim, "--lr", 1e-3, "--batch-size", 128,
                 "--epochs", args.epochs, "--threads", args.threads, "--out", out)
    train_seconds = time.time() - t0
    ais = ["--ais-steps", args.ais_steps, "--ais-images", args.ais_images] if args.ais_steps else []
    pyro_vae("evaluate", out, "--num-samples", args.num_samples, "--max-images", args.max_images, *ais,
             "--threads", args.threads, "--quiet")
    pyro_vae("plot", out, "--quiet", "--threads", args.threads)
    with open(os.path.join(out, "eval.json")) as f:
        report = json.load(f)
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    row = {"visible_quadrants": q, "epochs": report["epoch"], "num_images": report["num_images"],
           "num_samples": report["num_samples"], "baseline_nll": report["baseline"]["cross_entropy"],
           "baseline_stderr": report["baseline"]["stderr"], "cvae_neg_elbo": -report["elbo"],
           "cvae_nll": -report["log_likelihood"], "cvae_stderr": report["stderr"]["log_likelihood"],
           "khat_share_above_0_7": report["khat"]["frac_above_0_7"], "verdict": report["verdict"]["level"],
           "seconds_per_epoch": summary["seconds_per_epoch_median"], "seconds_evaluate": report["seconds"],
           "seconds_this_call": train_seconds}
    if "ais" in report:
        row.update(ais_nll=-report["ais"]["log_likelihood"], ais_images=report["ais"]["num_images"],
                   ais_minus_iwae=report["ais"]["understatement"], ais_verdict=report["verdict"]["ais"]["level"])
    return row


def write_table(args, rows):
    lines = ["| | " + " | ".join(f"{r['visible_quadrants']} quadrant(s)" for r in rows) + " |",
             "|---|" + "---:|" * len(rows)]

    def line(name, key, err=None):
        cells = [f"{r[key]:.2f}" + (f" +- {r[err]:.2f}" if err else "") if r.get(key) is not None else "-"
                 for r in rows]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    line("baseline network: masked cross-entropy (exact)", "baseline_nll", "baseline_stderr")
    line("CVAE: -ELBO (recognition net; the example's number)", "cvae_neg_elbo")
    line(f"CVAE: -L_S, S = {rows[0]['num_samples']}", "cvae_nll", "cvae_stderr")
    line(f"CVAE: -AIS (first {rows[0].get('ais_images', 0)} images)", "ais_nll")
    line("AIS - L_S on those images", "ais_minus_iwae")
    line("share of k-hat > 0.7", "khat_share_above_0_7")
    line("seconds per epoch", "seconds_per_epoch")
    lines.append("| verdict | " + " | ".join(r["verdict"] for r in rows) + " |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"rows": rows, "settings": vars(args)}, f, indent=1)
    print(text)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rows = [run_one(args, int(q)) for q in args.quadrants.split(",")]
    write_table(args, rows)


if __name__ == "__main__":
    main()

"""Semi-supervised M2 on MNIST: test error of q(y | x) with N = 100, 600, 1000, 3000 labels.

Kingma, Rezende, Mohamed & Welling (2014), Table 1, M2: 11.97 +- 1.71, 4.94 +- 0.13, 3.60 +- 0.56,
3.92 +- 0.63 percent test error with 100, 600, 1000 and 3000 labels. Architecture as theirs and Pyro's
``ss_vae_M2`` example: one hidden layer of 500 softplus units in the classifier q(y|x), the encoder
q(z|x,y) and the decoder p(x|y,z); Z = 50; Bernoulli likelihood; uniform p(y); Adam.

The classification weight alpha = SCALE * N (``--alpha-scale``; the paper's 0.1). With 0.1 the classifier
learns slowly: the unlabelled term sum_y q(y|x) [L(x, y) - log q(y|x)] holds the entropy of q(y|x), which
pulls q toward uniform while the decoder does not yet use y, and the labels' pull (0.1 N / L per labelled
point) is weaker. In 4 short epochs (12,000 unlabelled images each, 3,000 labels, lr 5e-4) the test error
fell to 27.1% with 0.1, 15.5% with 1 and 13.1% with 5; the benchmark's runs use 5 (``--alpha-scale 5``).

Data: full MNIST (60,000 train / 10,000 test), read from an npz (``--data``; the project's benchmark copy
lies at ``../shared/data/mnist.npz``). Binarisation: dynamic (``--binarize dynamic``, the default): every
minibatch is a fresh Bernoulli draw of the grey levels, the test set one fixed draw. Fresh draws keep
the 100 labelled images from being memorised pixel for pixel (a free data augmentation for the
classifier) and are the project's standard for MNIST likelihoods (Burda et al. 2016).

Each (labels, seed) run lives in ``OUT/labels-N/seed-S/``: ``split.json`` (the labelled indices, N / 10
per class, chosen by the seed), ``config.json``, ``history.json`` (per epoch: loss, test error, error on
the labelled images, seconds) and ``checkpoint.pt``, all written atomically after every epoch. Runs
are done in order; ``--resume`` continues each unfinished run from its checkpoint (exactly where an
uninterrupted run would be) and skips finished ones. A finished run's model is scored three ways
(``score.json``): on the fixed binarised draw of the test images (the error ``history.json`` logs), on the
grey test images (as the paper's classifier sees MNIST), and with q(y | x) averaged over 20 Bernoulli
draws of each test image. ``OUT/results.json`` and ``OUT/results.md`` hold the table (mean +- sd over
seeds) after every epoch.

    python scripts/benchmark_m2.py --measure                          # seconds per epoch, then stop
    python scripts/benchmark_m2.py --labels 3000 --seeds 0 --epochs 100 --out /tmp/m2
    python scripts/benchmark_m2.py --labels 3000 --seeds 0 --epochs 100 --out /tmp/m2 --resume
"""

import argparse
import io
import json
import math
import os
import statistics
import sys
import time

import pyro
import torch

import pyro_vae as pv
from pyro_vae.inference.semisupervised import (
    SemiSupervisedData,
    averaged_classification_error,
    classification_error,
    default_alpha,
    fit_semisupervised,
)

PAPER = {100: (11.97, 1.71), 600: (4.94, 0.13), 1000: (3.60, 0.56), 3000: (3.92, 0.63)}  # percent, Table 1 M2
DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mnist.npz")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA, help="MNIST npz with x_train, y_train, x_test, y_test")
    p.add_argument("--labels", default="3000", help="comma-separated numbers of labelled images, e.g. 100,600")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (each a split and an initialisation)")
    p.add_argument("--epochs", type=int, default=100, help="passes over the unlabelled images per run")
    p.add_argument("--batch-size", type=int, default=100, help="unlabelled images per step")
    p.add_argument("--labelled-batch-size", type=int, default=100, help="labelled images per step")
    p.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate")
    p.add_argument("--alpha-scale", type=float, default=0.1,
                   help="classification weight alpha = SCALE * N (the paper: 0.1; see the module docstring)")
    p.add_argument("--hidden", default="500", help="hidden layer sizes of every network")
    p.add_argument("--z-dim", type=int, default=50, help="Z")
    p.add_argument("--binarize", default="dynamic", choices=["dynamic", "static"])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--out", default="runs-m2", help="directory of the runs and the results table")
    p.add_argument("--resume", action="store_true", help="continue unfinished runs, skip finished ones")
    p.add_argument("--measure", action="store_true", help="time 20 steps of one run and print s/epoch, then stop")
    return p.parse_args(argv)


class RunFiles:
    """One run's directory: atomic checkpoint and history, the interface ``fit_semisupervised`` writes to."""

    def __init__(self, path):
        self.path = path
        os.makedirs(path, exist_ok=True)

    def file(self, name):
        return os.path.join(self.path, name)

    def _atomic(self, name, data):
        tmp = self.file(f".{name}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.file(name))

    def write_json(self, name, obj):
        self._atomic(name, (json.dumps(obj, indent=1) + "\n").encode())

    def read_json(self, name):
        with open(self.file(name)) as f:
            return json.load(f)

    def save_checkpoint(self, state):
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self._atomic("checkpoint.pt", buffer.getvalue())

    def load_checkpoint(self):
        return torch.load(self.file("checkpoint.pt"), map_location="cpu", weights_only=False)

    def has_checkpoint(self):
        return os.path.exists(self.file("checkpoint.pt"))

    def write_history(self, rows):
        self.write_json("history.json", rows)


def build_m2(data_dim, num_classes, hidden, z_dim):
    """The paper's M2: classifier, encoder and decoder MLPs of ``hidden`` softplus units."""
    lik, post = pv.Bernoulli(), pv.DiagonalNormal()
    return pv.SemiSupervisedVAE(
        classifier=pv.MLP(data_dim, hidden, num_classes, activation="softplus"),
        encoder=pv.ConditionalMLP(data_dim, num_classes, hidden, post.num_params(z_dim), activation="softplus"),
        decoder=pv.ConditionalMLP(z_dim, num_classes, hidden, lik.num_params(data_dim), activation="softplus"),
        num_classes=num_classes, prior=pv.StandardNormal(z_dim), likelihood=lik, posterior=post)


def score(args, data, grey_test, files):
    """The final model's test error three ways, written to ``score.json``: on the fixed binarised draw
    of the test images (what ``history.json`` logs each epoch), on the grey test images (as the paper's
    classifier sees MNIST), and with q(y | x) averaged over 20 Bernoulli draws of each test image."""
    state = files.load_checkpoint()
    config = files.read_json("config.json")
    m2 = build_m2(data.x_dim, 10, [int(h) for h in config["hidden"].split(",")], config["z_dim"])
    m2.load_state_dict(state["model"])
    m2.eval()
    result = {"epoch": state["epoch"],
              "test_error_binarised": classification_error(m2, data.x_test, data.y_test),
              "test_error_grey": classification_error(m2, grey_test, data.y_test),
              "test_error_averaged_20_draws": averaged_classification_error(m2, grey_test, data.y_test)}
    files.write_json("score.json", result)
    print(f"{files.path}: epoch {result['epoch']}: test error {100 * result['test_error_binarised']:.2f}% "
          f"(binarised), {100 * result['test_error_grey']:.2f}% (grey), "
          f"{100 * result['test_error_averaged_20_draws']:.2f}% (q(y|x) averaged over 20 draws)", flush=True)
    return result


def run_one(args, data, num_labels, seed, grey_test):
    files = RunFiles(os.path.join(args.out, f"labels-{num_labels}", f"seed-{seed}"))
    config = {k: v for k, v in vars(args).items() if k not in ("labels", "seeds", "resume", "measure", "out")}
    config.update(num_labels=num_labels, seed=seed)
    resume = args.resume and files.has_checkpoint()
    if resume:
        done = files.read_json("history.json")
        if done and done[-1]["epoch"] >= args.epochs:
            print(f"labels {num_labels} seed {seed}: finished ({done[-1]['epoch']} epochs)", flush=True)
            scored = os.path.exists(files.file("score.json")) and \
                files.read_json("score.json")["epoch"] == done[-1]["epoch"]
            if not scored:
                score(args, data, grey_test, files)
            return
        old = files.read_json("config.json")
        changed = sorted(k for k in config if k not in ("epochs", "threads") and old.get(k) != config[k])
        if changed:
            sys.exit(f"benchmark_m2: --resume with other settings than the run's ({', '.join(changed)}); "
                     f"use them as in {files.file('config.json')}")
    elif files.has_checkpoint():
        sys.exit(f"benchmark_m2: {files.path} holds a run; continue it with --resume or choose another --out")
    split = pv.label_split(data.y_train, num_labels, num_classes=10, seed=seed)
    files.write_json("split.json", split.to_dict())
    files.write_json("config.json", config)
    semi = SemiSupervisedData.from_dataset(data, split)
    pyro.set_rng_seed(seed)
    pyro.clear_param_store()
    m2 = build_m2(data.x_dim, 10, [int(h) for h in args.hidden.split(",")], args.z_dim)

    def report(row):
        print(f"labels {num_labels:5d} seed {seed}  epoch {row['epoch']:4d}  loss {row['train_loss']:9.3f}  "
              f"test error {100 * row['test_error']:6.2f}%  labelled error {100 * row['labelled_error']:6.2f}%  "
              f"{row['seconds']:6.1f} s", flush=True)
        write_results(args)

    fit_semisupervised(m2, semi, epochs=args.epochs, batch_size=args.batch_size,
                       labelled_batch_size=args.labelled_batch_size, lr=args.lr,
                       alpha=args.alpha_scale * data.num_train, seed=seed, run=files, resume=resume, on_epoch=report)
    score(args, data, grey_test, files)
    write_results(args)


def collect(out):
    """``{(labels, seed): history}`` of every run under ``out`` (finished or not)."""
    results = {}
    for name in sorted(os.listdir(out)) if os.path.isdir(out) else ():
        if not name.startswith("labels-"):
            continue
        for seed_dir in sorted(os.listdir(os.path.join(out, name))):
            path = os.path.join(out, name, seed_dir, "history.json")
            if seed_dir.startswith("seed-") and os.path.exists(path):
                with open(path) as f:
                    results[(int(name[7:]), int(seed_dir[5:]))] = json.load(f)
    return results


def _mean_sd(values):
    values = [100 * v for v in values]
    spread = statistics.stdev(values) if len(values) > 1 else math.nan
    text = f"{statistics.fmean(values):.2f}" + ("" if math.isnan(spread) else f" +- {spread:.2f}")
    return statistics.fmean(values), spread, text


def write_results(args):
    """``OUT/results.json`` and ``OUT/results.md`` from every run's history (and ``score.json``, the
    finished runs' test errors three ways) under ``--out``: mean +- sd over seeds."""
    results = collect(args.out)
    table = {}
    for (n, seed), history in sorted(results.items()):
        if history:
            table.setdefault(n, {})[seed] = history
    rows = []
    lines = ["| labels | seeds | epochs | test error, binarised (%) | grey (%) | q(y|x) over 20 draws (%) | "
             "paper M2 (%) | s/epoch |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, by_seed in sorted(table.items()):
        last = {seed: history[-1] for seed, history in by_seed.items()}
        scores = {}
        for seed in by_seed:
            path = os.path.join(args.out, f"labels-{n}", f"seed-{seed}", "score.json")
            if os.path.exists(path):
                with open(path) as f:
                    scored = json.load(f)
                if scored["epoch"] == last[seed]["epoch"]:
                    scores[seed] = scored
        binarised = _mean_sd([r["test_error"] for r in last.values()])
        complete = len(scores) == len(last)
        grey = _mean_sd([r["test_error_grey"] for r in scores.values()]) if complete else None
        averaged = _mean_sd([r["test_error_averaged_20_draws"] for r in scores.values()]) if complete else None
        seconds = statistics.median(r["seconds"] for h in by_seed.values() for r in h)
        epochs = sorted({r["epoch"] for r in last.values()})
        paper = PAPER.get(n)
        rows.append({"labels": n, "seeds": sorted(by_seed), "epochs": epochs,
                     "test_error_binarised_percent": [100 * r["test_error"] for r in last.values()],
                     "mean": binarised[0], "sd": binarised[1],
                     "test_error_grey_percent": None if grey is None else [100 * r["test_error_grey"]
                                                                           for r in scores.values()],
                     "test_error_averaged_percent": None if averaged is None else
                     [100 * r["test_error_averaged_20_draws"] for r in scores.values()],
                     "seconds_per_epoch": seconds, "paper": paper})
        lines.append(f"| {n} | {len(last)} | {'/'.join(map(str, epochs))} | {binarised[2]} | "
                     f"{'-' if grey is None else grey[2]} | {'-' if averaged is None else averaged[2]} | "
                     f"{'' if paper is None else f'{paper[0]} +- {paper[1]}'} | {seconds:.0f} |")
    os.makedirs(args.out, exist_ok=True)
    RunFiles(args.out).write_json("results.json", {"rows": rows, "settings": {
        k: v for k, v in vars(args).items() if k not in ("resume", "measure")}})
    RunFiles(args.out)._atomic("results.md", ("\n".join(lines) + "\n").encode())


def measure(args, data):
    """Seconds per epoch from 20 timed steps (after 3 warm-up steps) of the 3000-label setting."""
    split = pv.label_split(data.y_train, 3000, num_classes=10, seed=0)
    semi = SemiSupervisedData.from_dataset(data, split)
    m2 = build_m2(data.x_dim, 10, [int(h) for h in args.hidden.split(",")], args.z_dim)
    from pyro_vae.inference.semisupervised import SemiSupervisedObjective

    objective = SemiSupervisedObjective(default_alpha(semi.num_train), len(semi.x_labelled), len(semi.x_unlabelled))
    optimizer = torch.optim.Adam(m2.parameters(), lr=args.lr)
    times = []
    for step in range(23):
        xu = torch.bernoulli(semi.x_unlabelled[step * args.batch_size : (step + 1) * args.batch_size])
        xl = torch.bernoulli(semi.x_labelled[: args.labelled_batch_size])
        t0 = time.perf_counter()
        optimizer.zero_grad()
        objective(m2, xu, xl, semi.y_labelled[: args.labelled_batch_size]).backward()
        optimizer.step()
        times.append(time.perf_counter() - t0)
    per_step = statistics.median(times[3:])
    steps = math.ceil(len(semi.x_unlabelled) / args.batch_size)
    print(f"{per_step * 1000:.1f} ms per step (B_u={args.batch_size}, B_l={args.labelled_batch_size}), "
          f"{steps} steps per epoch: {per_step * steps:.0f} s per epoch on {args.threads} thread(s)")


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data = pv.load_dataset(f"npz:{os.path.abspath(args.data)}", binarize=args.binarize)
    if args.measure:
        return measure(args, data)
    grey_test = pv.load_dataset(f"npz:{os.path.abspath(args.data)}", binarize="none").x_test
    for n in [int(s) for s in args.labels.split(",")]:
        for seed in [int(s) for s in args.seeds.split(",")]:
            run_one(args, data, n, seed, grey_test)
    write_results(args)
    print(open(os.path.join(args.out, "results.md")).read())


if __name__ == "__main__":
    main()

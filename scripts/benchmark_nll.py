"""Test log-likelihood of pyro_vae's models on binary MNIST, beside the published numbers.

Architecture of Burda, Grosse & Salakhutdinov (2016), section 5: one stochastic layer of 50 units
and two deterministic layers of 200 tanh units on each side (``--model vae2``: two stochastic layers,
100 next to the data and 50 on top, 200-200 and 100-100 tanh nets, as theirs). Each model is trained
by ``pyro-vae train`` (a subprocess, so the run directory has config.json, history.csv and a
checkpoint; an existing run is resumed up to ``--epochs`` or left alone), then scored on a fixed
random subset of test images with S importance samples per image (the machinery of
``pyro-vae evaluate``: one set of draws gives the ELBO, L_S, the gap, PSIS k-hat and active units),
written to ``DIR/nll_eval.json``. The table goes to ``OUT/<data>/results.md`` and ``results.json``.

    python scripts/benchmark_nll.py --measure                      # seconds per epoch / per eval first
    python scripts/benchmark_nll.py --epochs 10 --threads 1        # dynamically binarised MNIST
    python scripts/benchmark_nll.py --data static --models vae,iwae50 --epochs 10

The papers' protocol (``--protocol papers``, issue 16): Burda et al.'s optimisation for their rows
(batch 20, Adam with epsilon 1e-4, learning rate 1e-3 * 10^(-i/7) for 3^i epochs, i = 0..7: 3,280
epochs, ``--lr-schedule burda``), every stage's model kept (``--keep-epochs stages``) and scored with
S = 5000 on all 10,000 test images; the VampPrior row with Tomczak & Welling's settings (statically
binarised MNIST, 500 pseudo-inputs, 300-300 hidden units, Z = 40, KL warm-up over 100 epochs, learning
rate 5e-4, batch 100). One command per row; each resumes where it stopped:

    python scripts/benchmark_nll.py --protocol papers --models vae --threads 1          # ~9 h on one core
    python scripts/benchmark_nll.py --protocol papers --models vae --no-train --stages   # NLL per stage

NLL = -L_S (nats, lower is better). References: Burda et al. (2016) Table 1; pythae's benchmark
(Chadebec et al. 2022, github.com/clementchadebec/benchmark_VAE, binary MNIST).
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

DATA = {  # name: (dataset spec, --binarize)
    "dynamic": (f"npz:{os.path.join(ROOT, '..', 'shared', 'data', 'mnist.npz')}", "dynamic"),
    "static": (f"npz:{os.path.join(ROOT, '..', 'shared', 'data', 'binarized_mnist.npz')}", "static"),
}
ARCH = ["--hidden", "200,200", "--activation", "tanh", "--latent-dim", "50"]
# name: (label, train flags beyond ARCH, Burda et al. 2016 Table 1 NLL, pythae NLL)
MODELS = {
    "vae": ("VAE (k=1)", ["--elbo", "meanfield"], 86.76, 89.78),
    "iwae5": ("IWAE k=5", ["--elbo", "iwae:5"], 85.54, None),
    "iwae50": ("IWAE k=50", ["--elbo", "iwae:50"], 84.78, 86.82),
    "mog": ("VAE, MoG prior (10)", ["--elbo", "trace", "--prior", "mog:10"], None, None),
    "vamp": ("VAE, VampPrior (50)", ["--elbo", "trace", "--prior", "vamp:50"], None, 85.79),
    "iaf": ("VAE, IAF posterior (2)", ["--elbo", "trace", "--posterior", "iaf:2"], None, None),
    "vae2": ("VAE, 2 stoch. layers", ["--model", "vae2", "--latent-dim", "100", "--elbo", "trace"], 85.33, None),
    "iwae50-2": ("IWAE k=50, 2 layers", ["--model", "vae2", "--latent-dim", "100", "--elbo", "iwae:50"],
                 82.90, None),
    # gradient estimators (issue 14): the same bounds, other gradients
    "trace": ("VAE, trace (sampled KL)", ["--elbo", "trace"], None, None),
    "stl": ("VAE, stl (path derivative)", ["--elbo", "stl"], None, None),
    "iwae5-dreg": ("IWAE-DReG k=5", ["--elbo", "iwae-dreg:5"], None, None),
    "iwae50-dreg": ("IWAE-DReG k=50", ["--elbo", "iwae-dreg:50"], None, None),
}
# The papers' protocol (--protocol papers): per row, the flags that replace the short protocol's.
BURDA = ["--batch-size", "20", "--lr", "1e-3", "--lr-schedule", "burda", "--adam-eps", "1e-4",
         "--keep-epochs", "stages"]
PAPERS = {  # name: (data, epochs, flags after ARCH and the row's own)
    "vae": ("dynamic", 3280, [*BURDA, "--elbo", "jit-meanfield"]),
    "iwae5": ("dynamic", 3280, BURDA),
    "iwae50": ("dynamic", 3280, BURDA),
    "vae2": ("dynamic", 3280, [*BURDA, "--elbo", "jit-trace"]),
    "vamp": ("static", 2000, ["--prior", "vamp:500", "--hidden", "300,300", "--latent-dim", "40",
                              "--kl-warmup", "100", "--lr", "5e-4", "--batch-size", "100", "--adam-eps", "1e-8",
                              "--keep-epochs", "1,10,100,300,1000,2000"]),
}
PAPER_TARGETS = {"vae": (86.76, 1.0), "iwae5": (85.54, 1.0), "iwae50": (84.78, 1.5), "vae2": (85.33, 1.5),
                 "vamp": (85.57, 1.0)}  # (published NLL, the tolerance)
TRAIN_K = {"iwae5": 5, "iwae50": 50, "iwae50-2": 50,  # k of the bound each model is trained on (else 1)
           "iwae5-dreg": 5, "iwae50-dreg": 50}
ESTIMATOR_MODELS = "trace,stl,iwae5,iwae5-dreg,iwae50,iwae50-dreg"  # --models for the estimator comparison
DEFAULT_MODELS = "vae,iwae5,iwae50,mog,iaf,vae2,vamp"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocol", choices=["short", "papers"], default="short",
                   help="short: --epochs of batch --batch-size at constant --lr for every model (the 10-epoch "
                        "table); papers: each row's published optimisation (see the docstring), overriding "
                        "--data, --epochs, --batch-size and --lr")
    p.add_argument("--stages", action="store_true",
                   help="with --protocol papers: also score every kept stage snapshot (S=--num-samples on "
                        "--max-test-images) for the learning curve; written to snapshots/*.nll_eval.json")
    p.add_argument("--stage-test-images", type=int,
                   help="test images for each stage snapshot (default --max-test-images): the same subset "
                        "rule, so a smaller number is a prefix-free random subset of the 10,000")
    p.add_argument("--data", choices=sorted(DATA), default="dynamic",
                   help="dynamic: mnist.npz binarised afresh per minibatch (60k/10k); static: Larochelle's "
                        "binarized_mnist.npz (50k train, test 10k)")
    p.add_argument("--data-root", help="folder holding mnist.npz / binarized_mnist.npz (default ../shared/data "
                   "beside the checkout)")
    p.add_argument("--models", default=DEFAULT_MODELS, help=f"comma-separated, of {','.join(MODELS)}")
    p.add_argument("--epochs", type=int, default=10, help="passes over the training set, the same for every model")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-samples", type=int, default=5000, help="importance samples S per test image")
    p.add_argument("--max-test-images", type=int, default=1000,
                   help="score a fixed random subset of this many test images (seeded; 10000: all)")
    p.add_argument("--subset-seed", type=int, default=0)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, help="torch intra-op threads for training and evaluation")
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "nll"), help="root of the run directories")
    p.add_argument("--measure", action="store_true",
                   help="only time a few training steps and a K=S evaluation of each model, and project "
                        "seconds per epoch and per evaluation (no runs written)")
    p.add_argument("--no-train", action="store_true", help="only evaluate and tabulate existing runs")
    p.add_argument("--train-only", action="store_true",
                   help="train (or resume) the rows and stop: for runs of hours continued in pieces")
    args = p.parse_args(argv)
    unknown = [m for m in args.models.split(",") if m not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {unknown}; choose from {','.join(MODELS)}")
    if args.protocol == "papers":
        missing = [m for m in args.models.split(",") if m not in PAPERS]
        if missing:
            p.error(f"--protocol papers covers {','.join(PAPERS)}; not {','.join(missing)}")
        if args.out == os.path.join(ROOT, "runs", "nll"):
            args.out = os.path.join(ROOT, "runs", "papers")
    return args


def row_setting(args, name):
    """(data, epochs) of a row: the papers' own under --protocol papers, else --data and --epochs."""
    if args.protocol == "papers":
        data, epochs, _ = PAPERS[name]
        return data, epochs
    return args.data, args.epochs


def train_flags(args, name):
    spec, binarize = DATA[row_setting(args, name)[0]]
    if args.data_root:  # the same file name in another folder
        spec = "npz:" + os.path.join(args.data_root, os.path.basename(spec[4:]))
    if args.protocol == "papers":  # the row's own flags last: argparse keeps the last of a repeated flag
        flags = ["--dataset", spec, "--binarize", binarize, *ARCH, *MODELS[name][1], *PAPERS[name][2],
                 "--seed", str(args.seed), "--device", args.device]
    else:
        flags = ["--dataset", spec, "--binarize", binarize, *ARCH, *MODELS[name][1],
                 "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--seed", str(args.seed),
                 "--device", args.device]
    if args.threads:
        flags += ["--threads", str(args.threads)]
    return flags


def config_for(args, name):
    """The TrainConfig ``pyro-vae train`` would build from these flags (for --measure)."""
    from pyro_vae.cli import make_parser
    from pyro_vae.cli.options import given_fields
    from pyro_vae.experiment.config import TrainConfig

    ns = make_parser().parse_args(["train", *train_flags(args, name), "--epochs", str(row_setting(args, name)[1])])
    return TrainConfig(**given_fields(ns)).validate()


def completed_epochs(run_dir):
    path = os.path.join(run_dir, "history.csv")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return max(0, sum(1 for line in f if line.strip()) - 1)


def train(args, name, run_dir):
    """Train (or resume up to --epochs) with the CLI; returns wall-clock seconds spent here."""
    epochs = row_setting(args, name)[1]
    done = completed_epochs(run_dir)
    if done >= epochs:
        print(f"[{name}] {run_dir}: {done} epochs already, not retraining", flush=True)
        return 0.0
    if done:
        cmd = ["train", "--resume", run_dir, "--epochs", str(epochs)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
    elif os.path.exists(run_dir) and os.listdir(run_dir):
        sys.exit(f"{run_dir} exists without a finished epoch; remove it or choose another --out")
    else:
        cmd = ["train", "--out", run_dir, *train_flags(args, name), "--epochs", str(epochs)]
    cmd = [sys.executable, "-m", "pyro_vae.cli", *cmd]
    print(f"[{name}] $ {' '.join(cmd[2:])}", flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    return time.perf_counter() - t0


def test_subset(num_test, n, seed):
    """A fixed random subset of test indices, sorted (the same for every model)."""
    if n >= num_test:
        return torch.arange(num_test)
    return torch.randperm(num_test, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def evaluate(args, name, run_dir, checkpoint="checkpoint.pt"):
    """Score the run (or one of its snapshots) on the test subset with S samples per image; writes
    and returns ``nll_eval.json`` (``snapshots/epoch-NNNNN.nll_eval.json`` for a snapshot)."""
    from pyro_vae.diagnostics.tightness import dataset_statistics, summarise
    from pyro_vae.experiment import load_run
    from pyro_vae.experiment.runs import atomic_write_json, json_safe

    path = os.path.join(run_dir, "nll_eval.json" if checkpoint == "checkpoint.pt"
                        else os.path.splitext(checkpoint)[0] + ".nll_eval.json")
    loaded = load_run(run_dir, device=args.device, checkpoint=checkpoint,
                      dataset=data_override(args, name), data_dir=None)
    idx = test_subset(len(loaded.data.x_test), args.max_test_images, args.subset_seed)
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        if (old.get("epoch"), old.get("num_samples"), old.get("num_images"), old.get("subset_seed")) == \
                (loaded.epoch, args.num_samples, len(idx), args.subset_seed) and "per_image" in old:
            return old
    x = loaded.data.x_test[idx].to(next(loaded.model.parameters()).device)
    t0 = time.perf_counter()
    stats = dataset_statistics(loaded.model.model, loaded.model.guide, x, args.num_samples, seed=args.seed)
    report = summarise(stats, args.num_samples)
    history = loaded.history
    report.update(model=name, label=MODELS[name][0], epoch=loaded.epoch, subset_seed=args.subset_seed,
                  eval_seconds=time.perf_counter() - t0, threads=torch.get_num_threads(),
                  train_seconds=sum(r["seconds"] + r["eval_seconds"] for r in history),
                  test_elbo_full=history[-1]["test_elbo"],
                  learning_curve=[[r["epoch"], r["test_elbo"]] for r in history],
                  per_image={"index": idx.tolist(), "log_likelihood": stats["curve"][max(stats["curve"])].tolist(),
                             "elbo": stats["elbo"].tolist()})
    atomic_write_json(path, json_safe(report))
    print(f"[{name}] NLL {-report['log_likelihood']:.2f} (S={args.num_samples}, {len(idx)} images, "
          f"{report['eval_seconds']:.0f} s), ELBO {report['elbo']:.2f}, gap {report['gap']:.2f}, "
          f"k-hat median {report['khat']['median']:.2f}, active units {report['active_units']}", flush=True)
    return report


def data_override(args, name):
    """The data spec to read a run's data from when ``--data-root`` moves it (else None: the run's own)."""
    if not args.data_root:
        return None
    spec = DATA[row_setting(args, name)[0]][0]
    return "npz:" + os.path.join(args.data_root, os.path.basename(spec[4:]))


def stage_reports(args, name, run_dir):
    """Score every kept snapshot of a run (the learning curve at the schedule's stage ends)."""
    folder = os.path.join(run_dir, "snapshots")
    names = sorted(f for f in os.listdir(folder) if f.endswith(".pt")) if os.path.isdir(folder) else []
    stage_args = argparse.Namespace(**{**vars(args), "max_test_images": args.stage_test_images or args.max_test_images})
    return [evaluate(stage_args, name, run_dir, os.path.join("snapshots", f)) for f in names]


def papers_table(args, reports):
    """The issue's table: each row's NLL at its last epoch beside the paper's and the tolerance."""
    lines = [f"| model | data | epochs | NLL (S={args.num_samples}, {args.max_test_images} test images) | +-se | "
             "ELBO | paper | goal | met? |", "| --- |" + " ---: |" * 8]
    for r in reports:
        target, tolerance = PAPER_TARGETS[r["model"]]
        nll = -r["log_likelihood"]
        met = "yes" if nll <= target + tolerance else f"no (+{nll - target:.2f})"
        lines.append(f"| {r['label']} | {row_setting(args, r['model'])[0]} | {r['epoch']} | {nll:.2f} | "
                     f"{r['stderr']['log_likelihood']:.2f} | {r['elbo']:.2f} | {target:.2f} | within {tolerance} | "
                     f"{met} |")
    return "\n".join(lines)


def papers_figure(args, reports, stages, path):
    """Test ELBO per epoch (all 10,000 test images, one draw) and NLL at each kept stage, log epochs."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for i, r in enumerate(reports):
        color = f"C{i}"
        epochs, elbo = zip(*r["learning_curve"], strict=False)
        ax.plot(epochs, [-v for v in elbo], color=color, linewidth=1, alpha=0.6, label=f"{r['label']}: -test ELBO")
        points = sorted((s["epoch"], -s["log_likelihood"]) for s in stages.get(r["model"], []))
        points.append((r["epoch"], -r["log_likelihood"]))
        ax.plot(*zip(*sorted(set(points)), strict=False), "o-", color=color, linewidth=2,
                label=f"{r['label']}: NLL (L_{args.num_samples})")
        target, _ = PAPER_TARGETS[r["model"]]
        ax.axhline(target, color=color, linestyle=":", linewidth=1)
    ends = [sum(3 ** j for j in range(i + 1)) for i in range(8)]
    for e in ends:
        ax.axvline(e, color="grey", linewidth=0.5, alpha=0.4)
    ax.set_xscale("log")
    ax.set_xlabel("epoch (log scale; grey lines: ends of the learning-rate stages, 3^i epochs each)")
    ax.set_ylabel("nats per test image (lower is better)")
    ax.set_title("Burda et al.'s schedule: -ELBO per epoch, NLL at the stage ends (dotted: the paper)",
                 fontsize="medium")
    ax.legend(fontsize="x-small")
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=90)
    return path


def extrapolate(curve, target_epoch):
    """Fit test ELBO(e) = a - b e^-c to the curve (epochs >= 2) and evaluate it at ``target_epoch``.

    A crude power law; None when it does not fit (too few epochs or no convergence).
    """
    pts = [(e, v) for e, v in curve if e >= 2]
    if len(pts) < 4:
        return None
    import numpy as np
    from scipy.optimize import curve_fit

    e, v = np.array(pts, dtype=float).T
    try:
        (a, b, c), _ = curve_fit(lambda t, a, b, c: a - b * t ** (-c), e, v, p0=(v[-1] + 1, 10.0, 0.5),
                                 bounds=([-1e4, 0, 0.05], [0, 1e5, 3]), maxfev=20000)
    except (RuntimeError, ValueError):
        return None
    if a > -1 or c <= 0.051 or c >= 2.99:  # stuck at a bound of the fit: the curve does not pin it down
        return None
    return float(a - b * target_epoch ** (-c)), float(a)


def fmt(x, spec=".2f"):
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def paired(first, r):
    """NLL(r) - NLL(first) over the same images, with the standard error of the paired difference."""
    a, b = first.get("per_image"), r.get("per_image")
    if not a or not b or a["index"] != b["index"]:
        return ""
    d = -(torch.tensor(b["log_likelihood"], dtype=torch.float64)
          - torch.tensor(a["log_likelihood"], dtype=torch.float64))
    return f"{d.mean().item():+.2f} ({d.std().item() / math.sqrt(d.numel()):.2f})"


def own_gap(r):
    """L_S - L_k for the k the model was trained with (the gap of the bound it optimised)."""
    k = str(TRAIN_K.get(r["model"], 1))
    curve = r["bound_curve"]
    return f"{r['log_likelihood'] - curve[k]:.2f} (k={k})" if k in curve else ""


ESTIMATOR_PAIRS = [("stl", "trace"), ("iwae5-dreg", "iwae5"), ("iwae50-dreg", "iwae50"), ("stl", "vae")]


def estimator_pairs(reports):
    """Markdown rows: NLL, ELBO and active units of each gradient estimator against the standard one
    trained on the same bound, the NLL difference paired over the same test images."""
    by_name = {r["model"]: r for r in reports}
    lines = ["| pair | NLL difference (paired se) | ELBO (subset) | active units |", "| --- | ---: | ---: | ---: |"]
    for a, b in ESTIMATOR_PAIRS:
        if a in by_name and b in by_name:
            ra, rb = by_name[a], by_name[b]
            lines.append(f"| {MODELS[a][0]} - {MODELS[b][0]} | {paired(rb, ra)} | "
                         f"{ra['elbo']:.2f} vs {rb['elbo']:.2f} | "
                         f"{ra['active_units']} vs {rb['active_units']} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def tabulate(args, reports):
    """Markdown tables: results beside the anchors, and the learning-curve summary."""
    lines = [f"| model | epochs | train min | NLL (S={args.num_samples}) | +-se | NLL - first (paired se) | "
             f"ELBO (subset) | gap L_S - L_1 | L_S - L_k (k trained) | "
             f"k-hat median | k-hat > 0.7 | active units | ELBO, all 10k test | Burda 2016 | pythae |",
             "| --- |" + " ---: |" * 14]
    for r in reports:
        _, _, burda, pythae = MODELS[r["model"]]
        lines.append(f"| {r['label']} | {r['epoch']} | {r['train_seconds'] / 60:.1f} | "
                     f"{-r['log_likelihood']:.2f} | {r['stderr']['log_likelihood']:.2f} | {paired(reports[0], r)} | "
                     f"{r['elbo']:.2f} | "
                     f"{r['gap']:.2f} | {own_gap(r)} | {fmt(r['khat']['median'])} | "
                     f"{fmt(r['khat']['frac_above_0_7'], '.1%')} | "
                     f"{r['active_units']}/{sum(s['dims'] for s in r['active_units_by_site'].values())} | "
                     f"{r['test_elbo_full']:.2f} | {fmt(burda)} | {fmt(pythae)} |")
    lines += ["", "| model | test ELBO, epoch 1 | epoch E/2 | epoch E | last-quarter slope (nats/epoch) | "
                  "power-law ELBO at 3,280 epochs | its asymptote |", "| --- |" + " ---: |" * 6]
    for r in reports:
        curve = r["learning_curve"]
        values = dict((int(e), v) for e, v in curve)
        last, half = max(values), max(1, max(values) // 2)
        q = max(1, last - max(1, last // 4))
        slope = (values[last] - values[q]) / (last - q) if last > q else float("nan")
        ext = extrapolate(curve, 3280)
        lines.append(f"| {r['label']} | {values[1]:.2f} | {values[half]:.2f} (e={half}) | {values[last]:.2f} | "
                     f"{slope:+.3f} | {fmt(ext and ext[0])} | {fmt(ext and ext[1])} |")
    return "\n".join(lines)


def measure(args):
    """Time a few training steps and a small K=S evaluation per model; project the full costs."""
    import pyro

    from pyro_vae.bounds import iwae
    from pyro_vae.experiment.build import build_data, build_elbo, build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    data = None
    print(f"threads {torch.get_num_threads()}; projected for {args.max_test_images} test images, S={args.num_samples}")
    for name in args.models.split(","):
        config = config_for(args, name)
        data = data or build_data(config)
        pyro.clear_param_store()
        pyro.set_rng_seed(0)
        vae = build_model(config, data)
        elbo = build_elbo(config, vae)
        opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
        batches = [torch.bernoulli(data.x_train[i * 128:(i + 1) * 128]) for i in range(13)]
        times = []
        for i, xb in enumerate(batches):
            t0 = time.perf_counter()
            opt.zero_grad()
            elbo.loss_and_grads(vae.model, vae.guide, xb, num_data=data.num_train)
            opt.step()
            if i >= 3:
                times.append(time.perf_counter() - t0)
        step = sorted(times)[len(times) // 2]
        epoch = step * math.ceil(data.num_train / args.batch_size)
        x = data.x_test[:20]
        with torch.no_grad():
            t0 = time.perf_counter()
            iwae(vae.model, vae.guide, x, args.num_samples)
            per_image = (time.perf_counter() - t0) / len(x)
        print(f"{name:>9}: {1e3 * step:7.1f} ms/step, {epoch:6.1f} s/epoch, eval {per_image * 1e3:6.1f} ms/image "
              f"-> {per_image * args.max_test_images:6.0f} s", flush=True)


def main(argv=None):
    args = parse_args(argv)
    if args.measure:
        return measure(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.protocol == "papers" and args.max_test_images == 1000:
        args.max_test_images = 10000  # evaluation as the papers did it: every test image
    reports, stages = [], {}
    for name in args.models.split(","):
        root = os.path.join(args.out, row_setting(args, name)[0])
        os.makedirs(root, exist_ok=True)
        run_dir = os.path.join(root, name)
        if not args.no_train:
            train(args, name, run_dir)
        if args.train_only:
            continue
        if completed_epochs(run_dir) == 0:
            print(f"[{name}] no run in {run_dir}; skipped", flush=True)
            continue
        if args.stages:
            stages[name] = stage_reports(args, name, run_dir)
        reports.append(evaluate(args, name, run_dir))
        table = papers_table(args, reports) if args.protocol == "papers" else tabulate(args, reports)
        with open(os.path.join(args.out, "results.md"), "w") as f:
            f.write(table + "\n")
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump({"reports": reports, "stages": stages}, f, indent=1)
    if args.protocol == "papers":
        if reports:
            print(f"wrote {papers_figure(args, reports, stages, os.path.join(args.out, 'learning_curves.png'))}")
        print(papers_table(args, reports))
        for name, rows in stages.items():
            print(f"{name}: " + ", ".join(f"epoch {r['epoch']}: NLL {-r['log_likelihood']:.2f}" for r in rows))
        return
    print(tabulate(args, reports))
    print(estimator_pairs(reports))


if __name__ == "__main__":
    main()

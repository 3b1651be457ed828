"""Speed and memory of pyro_vae against hand-written PyTorch, same process, interleaved rounds.

Training step: each Pyro objective (``trace``, ``meanfield`` (the project's default),
``jit-trace``, ``jit-meanfield``) against a hand-written VAE step (this file only: the same
encoder/decoder modules, summed binary cross-entropy, closed-form Gaussian KL, the same vectorised
particles, Adam) on the 784-400-20 MLP at batch 128. Evaluation: the K=5000 importance-weighted
estimate per image, ``pyro_vae.bounds.iwae`` (log weights read from Pyro traces) against the
hand-written vectorised loop ``torch_iwae`` of ``scripts/benchmark_iwae.py`` (same chunking, same
streaming logsumexp), and the whole ``pyro-vae evaluate`` computation (``point_statistics``: bound
curve, PSIS k-hat, ESS, posterior means) against the same reference.

Rounds are interleaved (reference, ours, reference, ours, ...; evaluation alternates the order)
and each round's time ratio is taken against the reference of the same round; the script prints
the median ratio and its range. Peak memory (``--memory``): every configuration runs alone in a
fresh subprocess, which builds the model and inputs, returns freed heap to the OS (glibc
``malloc_trim``), resets its peak RSS to the current RSS (``/proc/self/clear_refs``, Linux; glibc's
``MALLOC_MMAP_THRESHOLD_=65536`` so that freed
tensors leave RSS), records the peak resident memory ``VmHWM`` (the
baseline) and reads it again after the workload; the figure is the difference, the
peak resident memory the workload added (first calls included: JIT compilation, allocator caches).

    python scripts/benchmark_speed.py --threads 1                 # steps and evaluation
    python scripts/benchmark_speed.py --threads 1 --memory        # plus peak memory per configuration
    python scripts/benchmark_speed.py --profile                   # where the default objective's time goes
"""

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time

import pyro
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark_iwae import torch_iwae  # noqa: E402  the hand-written IWAE reference

from pyro_vae import TrainConfig, load_dataset, make_elbo  # noqa: E402
from pyro_vae.bounds import default_chunk_size, iwae  # noqa: E402
from pyro_vae.diagnostics.tightness import dataset_statistics, point_statistics  # noqa: E402
from pyro_vae.experiment.build import build_vae  # noqa: E402
from pyro_vae.inference.step import SVIStep  # noqa: E402
from pyro_vae.inference.train_state import make_optimizer  # noqa: E402

DEFAULT_OBJECTIVE = TrainConfig().elbo


class ReferenceStep:
    """One Adam step of a hand-written VAE: BCE + closed-form KL, P vectorised particles.

    ``fused``: torch's fused Adam, as ``fit`` uses (the like-for-like reference: the ratio is then
    what Pyro costs); otherwise torch's default Adam, what a hand-written loop usually runs.
    """

    def __init__(self, vae, num_data, particles, lr=1e-3, fused=False):
        self.encoder, self.decoder = copy.deepcopy(vae.encoder), copy.deepcopy(vae.decoder)
        self.params = list(self.encoder.parameters()) + list(self.decoder.parameters())
        self.opt = torch.optim.Adam(self.params, lr=lr, fused=True if fused else None)
        self.num_data, self.particles = num_data, particles

    def __call__(self, x):  # x: (B, D)
        self.opt.zero_grad(set_to_none=True)
        loc, rho = self.encoder(x).chunk(2, -1)  # (B, Z)
        scale = F.softplus(rho) + 1e-5
        z = loc + scale * torch.randn((self.particles, *loc.shape), device=loc.device)  # (P, B, Z)
        logits = self.decoder(z)  # (P, B, D)
        rec = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
        kl = 0.5 * (loc**2 + scale**2 - 1 - 2 * scale.log()).sum(-1)  # (B,)
        loss = -(rec.mean(0) - kl).sum() * (self.num_data / x.shape[0])
        loss.backward()
        self.opt.step()
        return loss.item()


class PyroStep:
    """The step ``fit`` takes (``pyro_vae.inference.step.SVIStep``: Pyro's validation on the first
    step only, unless ``--no-validation`` turned it off everywhere or ``--validate-every-step``)."""

    def __init__(self, vae, elbo, num_data, lr=1e-3, validate_every_step=False):
        self.vae = vae
        self.step = SVIStep(vae, elbo, make_optimizer(vae.parameters(), lr=lr), num_data,
                            validate_every_step=validate_every_step)

    def __call__(self, x):
        return self.step(x)


DEVICE = torch.device("cpu")  # set by --device


def synchronize():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def time_steps(step, batches):
    synchronize()
    t = time.perf_counter()
    for x in batches:
        step(x)
    synchronize()
    return time.perf_counter() - t


def setup(args):
    data = load_dataset("mnist5k")
    gen = torch.Generator().manual_seed(0)
    n = data.x_train.shape[0]  # wrap around: steps x batch may exceed the embedded training set
    batches = [torch.bernoulli(data.x_train[torch.arange(i * args.batch_size, (i + 1) * args.batch_size) % n],
                               generator=gen).to(DEVICE) for i in range(args.steps)]
    return data, batches


def make_step(name, particles, data, validate_every_step=False):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    vae = build_vae(TrainConfig(), data.data_dim).to(DEVICE)
    if name == "reference":
        return ReferenceStep(vae, data.num_train, particles, fused=True)
    return PyroStep(vae, make_elbo(name, particles), data.num_train, validate_every_step=validate_every_step)


def eval_routes(args, data):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    vae = build_vae(TrainConfig(), data.data_dim).to(DEVICE).eval()
    reps = -(-args.eval_images // len(data.x_test))  # mnist5k has 1,000 test images: tile them for more
    x = data.x_test.repeat(reps, 1)[: args.eval_images].to(DEVICE)
    chunk = default_chunk_size(len(x))
    return {
        "reference": lambda: torch_iwae(vae, x, args.num_samples, chunk),
        "iwae": lambda: iwae(vae.model, vae.guide, x, args.num_samples, chunk),
        "evaluate": lambda: point_statistics(vae.model, vae.guide, x, args.num_samples, chunk_size=chunk),
        "evaluate-no-psis": lambda: point_statistics(vae.model, vae.guide, x, args.num_samples, chunk_size=chunk,
                                                     psis=False),
        # the whole data set in batches of 100, as `pyro-vae evaluate` runs it (for --memory at many images)
        "dataset": lambda: dataset_statistics(vae.model, vae.guide, x, args.num_samples, batch_size=100, seed=0),
    }


def bench_steps(args, data, batches):
    """Each objective against two hand-written references, interleaved: ``fused`` uses the same
    (fused) Adam as ``fit``, so its ratio is what Pyro costs; ``default`` uses torch's default Adam."""
    print(f"{'objective':>14} {'P':>3} {'ms/step':>8} {'ref ms':>7} {'ratio':>6}  (min-max)   "
          f"{'default-Adam ref ms':>19} {'ratio':>6}  (min-max)")
    results = []
    for particles in args.particles:
        for name in args.objectives.split(","):
            ours = make_step(name, particles, data, args.validate_every_step)
            refs = {"fused": ReferenceStep(ours.vae, data.num_train, particles, fused=True),
                    "default": ReferenceStep(ours.vae, data.num_train, particles)}
            for step in (ours, *refs.values()):  # warm up (and compile the JIT objectives)
                time_steps(step, batches[:3])
            t_ours, t_ref = [], {k: [] for k in refs}
            for _ in range(args.rounds):
                for k, ref in refs.items():
                    t_ref[k].append(time_steps(ref, batches))
                t_ours.append(time_steps(ours, batches))
            row = dict(objective=name, particles=particles, ms=1e3 * statistics.median(t_ours) / args.steps)
            for k in refs:
                ratios = [o / r for o, r in zip(t_ours, t_ref[k], strict=False)]
                row[k] = dict(ref_ms=1e3 * statistics.median(t_ref[k]) / args.steps, ratio=statistics.median(ratios),
                              lo=min(ratios), hi=max(ratios))
            # the like-for-like figures keep their old keys
            row.update(ref_ms=row["fused"]["ref_ms"], ratio=row["fused"]["ratio"], lo=row["fused"]["lo"],
                       hi=row["fused"]["hi"])
            results.append(row)
            f, d = row["fused"], row["default"]
            print(f"{name:>14} {particles:>3} {row['ms']:8.2f} {f['ref_ms']:7.2f} {f['ratio']:6.2f}  "
                  f"({f['lo']:.2f}-{f['hi']:.2f})   {d['ref_ms']:19.2f} {d['ratio']:6.2f}  "
                  f"({d['lo']:.2f}-{d['hi']:.2f})",
                  flush=True)
    return results


def bench_eval(args, data):
    routes = {k: v for k, v in eval_routes(args, data).items() if k != "dataset"}
    for f in routes.values():  # warm up
        f()
    print(f"\nK={args.num_samples} evaluation, {args.eval_images} images per call, "
          f"chunk {default_chunk_size(args.eval_images)} draws, {args.eval_rounds} rounds")
    print(f"{'route':>14} {'ms/image':>9} {'ref ms':>7} {'ratio':>6}  (min-max ratio)")
    times = {k: [] for k in routes}
    for r in range(args.eval_rounds):
        order = list(routes) if r % 2 == 0 else list(routes)[::-1]
        for name in order:
            synchronize()
            t0 = time.perf_counter()
            routes[name]()
            synchronize()
            times[name].append(time.perf_counter() - t0)
    results = []
    for name in ("iwae", "evaluate", "evaluate-no-psis"):
        ratios = [o / t for o, t in zip(times[name], times["reference"], strict=False)]
        row = dict(route=name, ms_per_image=1e3 * statistics.median(times[name]) / args.eval_images,
                   ref_ms_per_image=1e3 * statistics.median(times["reference"]) / args.eval_images,
                   ratio=statistics.median(ratios), lo=min(ratios), hi=max(ratios))
        results.append(row)
        print(f"{name:>14} {row['ms_per_image']:9.2f} {row['ref_ms_per_image']:7.2f} {row['ratio']:6.3f}  "
              f"({row['lo']:.3f}-{row['hi']:.3f})", flush=True)
    return results


def peak_rss_kib():
    """This process's peak resident memory (``VmHWM`` in /proc/self/status, KiB).

    Not ``getrusage().ru_maxrss``: Linux carries it across ``exec`` from the parent (the benchmark
    that starts these children had already peaked above 1 GiB) and ``clear_refs`` does not reset it,
    which is why an earlier version of this script reported +0.0 MiB for workloads of 80 MiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def reset_peak_rss():
    """Reset this process's peak RSS (VmHWM, which ru_maxrss reports) to its current RSS.

    Linux >= 4.0: writing 5 to /proc/self/clear_refs (proc(5)). Without it the baseline would be
    the setup's transient peak (about 1 GiB of imports and data loading), which hides the workload;
    glibc's ``malloc_trim(0)`` first returns the setup's freed heap to the OS, else the workload
    reuses those already-resident pages and adds nothing to the peak.
    """
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back to the OS, so the workload's
    with open("/proc/self/clear_refs", "w") as f:  # allocations show as new resident pages
        f.write("5")


def child(args):
    """Run one configuration alone and print the peak resident memory it added (JSON)."""
    kind, name, particles = args.child.split(":")
    if name == "dataset":  # the number of images rides in the third field
        args.eval_images = int(particles)
    data, batches = setup(args)
    if kind == "step":
        step = make_step(name, int(particles), data, args.validate_every_step)
        work = lambda: time_steps(step, batches)  # noqa: E731
    else:
        work = eval_routes(args, data)[name]
    reset_peak_rss()  # setup (imports, data loading) peaks higher than the workload: forget it
    base = peak_rss_kib()  # now the current RSS
    work()
    peak = peak_rss_kib()
    print(json.dumps({"config": args.child, "baseline_mib": base / 1024, "added_mib": (peak - base) / 1024}))


def bench_memory(args):
    configs = [f"step:reference:{p}" for p in args.particles]
    configs += [f"step:{o}:{p}" for p in args.particles for o in args.objectives.split(",")]
    configs += ["eval:reference:0", "eval:iwae:0", "eval:evaluate:0"]
    configs += [f"eval:dataset:{n}" for n in args.dataset_images]
    print("\npeak resident memory added by the workload (fresh subprocess each; peak RSS reset after "
          "setup; VmHWM after minus before the workload)")
    results = []
    for c in configs:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", c, "--steps", str(args.steps),
               *(["--no-validation"] if args.no_validation else []),
               *(["--validate-every-step"] if args.validate_every_step else []),
               "--batch-size", str(args.batch_size), "--eval-images", str(args.eval_images),
               "--num-samples", str(args.num_samples), "--device", args.device]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        # Tensors above 64 KiB get their own mmap, unmapped on free: RSS then tracks live tensors
        # instead of glibc's heap reusing pages that setup freed (which hid the workload entirely).
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout.strip().splitlines()[-1]
        row = json.loads(out)
        results.append(row)
        print(f"{c:>24}: +{row['added_mib']:7.1f} MiB  (baseline {row['baseline_mib']:.0f} MiB)", flush=True)
    return results


def profile(args, data, batches):
    import cProfile
    import pstats

    step = make_step(DEFAULT_OBJECTIVE, 1, data, args.validate_every_step)
    time_steps(step, batches[:3])
    prof = cProfile.Profile()
    prof.runcall(time_steps, step, batches * 5)
    print(f"\ncProfile of {5 * len(batches)} '{DEFAULT_OBJECTIVE}' steps (P=1), by internal time:")
    pstats.Stats(prof).sort_stats("tottime").print_stats(18)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objectives", default="trace,meanfield,jit-trace,jit-meanfield")
    p.add_argument("--particles", type=int, nargs="+", default=[1, 10])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="steps per timed block")
    p.add_argument("--rounds", type=int, default=11)
    p.add_argument("--num-samples", type=int, default=5000, help="K of the evaluation benchmark")
    p.add_argument("--eval-images", type=int, default=50, help="test images per evaluation call")
    p.add_argument("--eval-rounds", type=int, default=5)
    p.add_argument("--dataset-images", type=int, nargs="*", default=[],
                   help="with --memory: also the peak memory of evaluate's whole-data-set loop (batches of "
                        "100) at these numbers of test images, e.g. 1000 10000")
    p.add_argument("--skip-steps", action="store_true")
    p.add_argument("--skip-eval", action="store_true")
    p.add_argument("--memory", action="store_true", help="also measure peak memory, one subprocess each")
    p.add_argument("--profile", action="store_true", help="cProfile the default objective's steps")
    p.add_argument("--json", help="write all results to this file")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--no-validation", action="store_true",
                   help="turn Pyro's distribution checks off (on by default in Pyro, and in pyro-vae train)")
    p.add_argument("--validate-every-step", action="store_true",
                   help="keep Pyro's checks on every step (before issue 15, what pyro-vae train did); by default "
                        "the Pyro step is fit's: checks on the first step only")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    pyro.enable_validation(not args.no_validation)
    if args.child:
        return child(args)

    data, batches = setup(args)
    print(f"torch {torch.__version__}, pyro {pyro.__version__}, threads {torch.get_num_threads()}, "
          f"784-400-20 MLP, batch {args.batch_size}, {args.steps} steps x {args.rounds} rounds; "
          f"default objective: {DEFAULT_OBJECTIVE}; Pyro validation {'off' if args.no_validation else 'on'}; "
          f"load average {os.getloadavg()[0]:.2f}")
    out = {"validation": not args.no_validation, "torch": torch.__version__, "pyro": pyro.__version__,
           "threads": torch.get_num_threads(),
           "load_before": os.getloadavg()}
    if not args.skip_steps:
        out["steps"] = bench_steps(args, data, batches)
    if not args.skip_eval:
        out["eval"] = bench_eval(args, data)
    if args.memory:
        out["memory"] = bench_memory(args)
    if args.profile:
        profile(args, data, batches)
    out["load_after"] = os.getloadavg()
    print(f"\nload average before {out['load_before'][0]:.2f}, after {out['load_after'][0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()

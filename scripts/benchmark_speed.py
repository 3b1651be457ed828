"""Speed and memory of pyro_vae against hand-written PyTorch, same process, interleaved rounds.

Training step: each objective (``meanfield`` (the default), ``trace``, ``stl``, ``iwae:K``,
``iwae-dreg:K``, and the older ``jit-trace``, ``jit-meanfield``), as ``fit`` steps it (``--routes``:
``compiled``, the default step; ``captured``; ``eager``, Pyro's interpreter), against its own
hand-written eager PyTorch form (this file only: the same encoder/decoder modules, summed binary
cross-entropy, the same KL or weights and gradient estimator, the same vectorised particles, the
same fused Adam), on the networks of ``--nets``: ``demo`` (784-400-20, batch 128), ``small``
(784-16-2, batch 128), ``deep`` (784-200-200-50 tanh, batch 20). ``--reference-compiled`` also times
the hand-written step under ``torch.compile`` (inductor), the speed a compiled hand-written loop reaches.

Evaluation: the K=5000 importance-weighted estimate per image, ``pyro_vae.bounds.iwae`` against two
hand-written vectorised loops of ``scripts/benchmark_iwae.py`` (same chunking, same streaming
logsumexp): the naive one a user writes (``binary_cross_entropy_with_logits``) and the like-for-like
one (the softplus form pyro_vae's Bernoulli takes in evaluation); and the whole ``pyro-vae evaluate``
computation (``point_statistics``: bound curve, PSIS k-hat, ESS, posterior means).

Rounds are interleaved, the order of library and reference alternating from round to round, and
each round's time ratio is taken against the reference of the same round; the script prints the
median ratio and its range. Warm-up steps (not timed) build and compile the graphs and run Pyro's
validation, which ``fit`` runs once per graph (or on the first eager step): the header says so.

Peak memory (``--memory``): every configuration runs alone in a
fresh subprocess, which builds the model and inputs, returns freed heap to the OS (glibc
``malloc_trim``), resets its peak RSS to the current RSS (``/proc/self/clear_refs``, Linux; glibc's
``MALLOC_MMAP_THRESHOLD_=65536`` so that freed
tensors leave RSS), records the peak resident memory ``VmHWM`` (the
baseline) and reads it again after the workload; the figure is the difference, the
peak resident memory the workload added (first calls included: JIT compilation, allocator caches).

    python scripts/benchmark_speed.py --threads 1                 # steps (every net, objective) and evaluation
    python scripts/benchmark_speed.py --threads 1 --nets demo --objectives meanfield --skip-eval  # one row
    python scripts/benchmark_speed.py --threads 1 --memory        # plus peak memory per configuration
    python scripts/benchmark_speed.py --profile                   # where the default objective's time goes
"""

import argparse
import copy
import json
import math
import os
import statistics
import subprocess
import sys
import time

import pyro
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark_iwae import torch_iwae  # noqa: E402  the hand-written IWAE references

from pyro_vae import TrainConfig, load_dataset, make_elbo  # noqa: E402
from pyro_vae.bounds import default_chunk_size, iwae  # noqa: E402
from pyro_vae.diagnostics.tightness import dataset_statistics, point_statistics  # noqa: E402
from pyro_vae.experiment.build import build_vae  # noqa: E402
from pyro_vae.inference.graph_step import GraphLoss  # noqa: E402
from pyro_vae.inference.step import SVIStep  # noqa: E402
from pyro_vae.inference.train_state import make_optimizer  # noqa: E402

DEFAULT_OBJECTIVE = TrainConfig().elbo


LOG_2PI = math.log(2 * math.pi)


class ReferenceStep:
    """One Adam step of a hand-written VAE for ``objective``, what a user writes in PyTorch:

    ``meanfield``: BCE + closed-form Gaussian KL; ``trace``: BCE + sampled log q - log p; ``stl``: the
    same with q's parameters detached in log q; ``iwae:K``: log-mean-exp of K weights; ``iwae-dreg:K``:
    the same with q's parameters detached and the gradient reaching each z scaled by its normalised
    weight (Tucker et al. 2019). P vectorised particles for ``meanfield`` and ``trace``.

    ``fused``: torch's fused Adam, as ``fit`` uses (the like-for-like reference: the ratio is then
    what Pyro costs); otherwise torch's default Adam, what a hand-written loop usually runs.
    ``compile``: the step's loss and backward under ``torch.compile`` (inductor).
    """

    def __init__(self, vae, objective, num_data, particles=1, lr=1e-3, fused=True, compile=False):
        self.encoder, self.decoder = copy.deepcopy(vae.encoder), copy.deepcopy(vae.decoder)
        self.params = list(self.encoder.parameters()) + list(self.decoder.parameters())
        self.opt = torch.optim.Adam(self.params, lr=lr, fused=True if fused else None)
        name, _, k = objective.partition(":")
        self.name, self.num_data = name, num_data
        self.particles = int(k) if k else particles
        self.loss = torch.compile(self._loss) if compile else self._loss

    def _loss(self, x):  # x: (B, D)
        loc, rho = self.encoder(x).chunk(2, -1)  # (B, Z)
        scale = F.softplus(rho) + 1e-5
        eps = torch.randn((self.particles, *loc.shape), device=loc.device)
        z = loc + scale * eps  # (P, B, Z)
        logits = self.decoder(z)  # (P, B, D)
        rec = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)  # (P, B)
        scale_n = self.num_data / x.shape[0]
        if self.name == "meanfield":
            kl = 0.5 * (loc**2 + scale**2 - 1 - 2 * scale.log()).sum(-1)  # (B,)
            return -(rec.mean(0) - kl).sum() * scale_n
        stop = self.name in ("stl", "iwae-dreg")
        q_loc, q_scale = (loc.detach(), scale.detach()) if stop else (loc, scale)
        log_q = (-0.5 * ((z - q_loc) / q_scale) ** 2 - q_scale.log() - 0.5 * LOG_2PI).sum(-1)  # (P, B)
        log_w = rec - 0.5 * (z**2 + LOG_2PI).sum(-1) - log_q  # (P, B)
        if self.name in ("trace", "stl"):
            return -log_w.mean(0).sum() * scale_n
        if self.name == "iwae-dreg":
            w = torch.softmax(log_w.detach(), 0)  # (K, B)
            z.register_hook(lambda g: g * w.unsqueeze(-1))
        return -(torch.logsumexp(log_w, 0) - math.log(self.particles)).sum() * scale_n

    def __call__(self, x):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss(x)
        loss.backward()
        self.opt.step()
        return loss.item()


class PyroStep:
    """The step ``fit`` takes (``pyro_vae.inference.step.SVIStep`` with a ``GraphLoss`` of ``route``:
    Pyro's validation once per graph, or on the first eager step, unless ``--no-validation`` turned
    it off everywhere or ``--validate-every-step`` kept it on every (eager) step)."""

    def __init__(self, vae, elbo, num_data, lr=1e-3, validate_every_step=False, route="compiled"):
        self.vae = vae
        optimizer = make_optimizer(vae.parameters(), lr=lr)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        self.graph = GraphLoss(vae, elbo, params, num_data, mode=route)
        self.step = SVIStep(vae, elbo, optimizer, num_data, validate_every_step=validate_every_step,
                            graph=self.graph)

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


# --nets: the networks of the speed table (hidden sizes, latent size, activation, batch size)
NETS = {"demo": ([400], 20, "relu", 128), "small": ([16], 2, "relu", 128), "deep": ([200, 200], 50, "tanh", 20)}


def net_config(net):
    hidden, latent, activation, _ = NETS[net]
    return TrainConfig(hidden=hidden, latent_dim=latent, activation=activation)


def net_label(net):
    hidden, latent, activation, batch = NETS[net]
    return f"784-{'-'.join(map(str, hidden))}-{latent}{' ' + activation if activation != 'relu' else ''}, B={batch}"


def setup(args, batch_size=None):
    data = load_dataset("mnist5k")
    gen = torch.Generator().manual_seed(0)
    n, b = data.x_train.shape[0], batch_size or args.batch_size  # wrap around: steps x batch may exceed the data
    batches = [torch.bernoulli(data.x_train[torch.arange(i * b, (i + 1) * b) % n], generator=gen).to(DEVICE)
               for i in range(args.steps)]
    return data, batches


def make_step(name, particles, data, validate_every_step=False, route="compiled", net="demo"):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    vae = build_vae(net_config(net), data.data_dim).to(DEVICE)
    if name.startswith("reference"):  # reference or reference-OBJECTIVE
        return ReferenceStep(vae, name.partition("-")[2] or DEFAULT_OBJECTIVE, data.num_train, particles)
    return PyroStep(vae, make_elbo(name, particles), data.num_train, validate_every_step=validate_every_step,
                    route=route)


def eval_routes(args, data):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    vae = build_vae(TrainConfig(), data.data_dim).to(DEVICE).eval()
    reps = -(-args.eval_images // len(data.x_test))  # mnist5k has 1,000 test images: tile them for more
    x = data.x_test.repeat(reps, 1)[: args.eval_images].to(DEVICE)
    chunk = default_chunk_size(len(x))
    return {
        "reference": lambda: torch_iwae(vae, x, args.num_samples, chunk, form="bce"),
        "reference-softplus": lambda: torch_iwae(vae, x, args.num_samples, chunk, form="softplus"),
        "iwae": lambda: iwae(vae.model, vae.guide, x, args.num_samples, chunk),
        "iwae-eager": lambda: iwae(vae.model, vae.guide, x, args.num_samples, chunk, graph="eager"),
        "evaluate": lambda: point_statistics(vae.model, vae.guide, x, args.num_samples, chunk_size=chunk),
        "evaluate-no-psis": lambda: point_statistics(vae.model, vae.guide, x, args.num_samples, chunk_size=chunk,
                                                     psis=False),
        # the whole data set in batches of 100, as `pyro-vae evaluate` runs it (for --memory at many images)
        "dataset": lambda: dataset_statistics(vae.model, vae.guide, x, args.num_samples, batch_size=100, seed=0),
    }


def _ratios(ours, ref):
    ratios = [o / r for o, r in zip(ours, ref, strict=True)]
    return dict(ref_ms=None, ratio=statistics.median(ratios), lo=min(ratios), hi=max(ratios))


def bench_steps(args, data_by_net):
    """Each (net, objective, route) against the objective's own hand-written eager step (fused Adam, the
    like-for-like reference: the ratio is what pyro_vae costs or saves), in interleaved rounds whose order
    alternates; optionally also against torch's default Adam and the hand-written step under torch.compile."""
    extra = ([("default-Adam", dict(fused=False))] if args.default_adam else []) + \
        ([("compiled-ref", dict(compile=True))] if args.reference_compiled else [])
    print(f"{'net':>24} {'objective':>12} {'P':>2} {'route':>9} {'ms/step':>8} {'ref ms':>7} {'ratio':>6}  (min-max)"
          + "".join(f"   {name + ' ms':>15} {'ratio':>6}  (min-max)" for name, _ in extra))
    results = []
    for net in args.nets.split(","):
        data, batches = data_by_net[net]
        for particles in args.particles:
            for name in args.objectives.split(","):
                if particles > 1 and name.partition(":")[0] not in ("meanfield", "trace", "stl"):
                    continue  # iwae:K and iwae-dreg:K draw their own K
                for route in args.routes.split(","):
                    ours = make_step(name, particles, data, args.validate_every_step, route, net)
                    refs = {"ref": ReferenceStep(ours.vae, name.replace("jit-", ""), data.num_train, particles)}
                    refs.update((k, ReferenceStep(ours.vae, name.replace("jit-", ""), data.num_train, particles, **kw))
                                for k, kw in extra)
                    for step in (ours, *refs.values()):  # warm up: build and compile graphs, validate
                        time_steps(step, batches[:3])
                    times = {k: [] for k in ("ours", *refs)}
                    for r in range(args.rounds):
                        order = ["ours", *refs] if r % 2 else [*refs, "ours"]
                        for k in order:
                            times[k].append(time_steps(ours if k == "ours" else refs[k], batches))
                    row = dict(net=net, objective=name, particles=particles, route=route,
                               graphs=ours.graph.routes, ms=1e3 * statistics.median(times["ours"]) / args.steps)
                    for k in refs:
                        row[k] = _ratios(times["ours"], times[k])
                        row[k]["ref_ms"] = 1e3 * statistics.median(times[k]) / args.steps
                    row.update(ref_ms=row["ref"]["ref_ms"], ratio=row["ref"]["ratio"], lo=row["ref"]["lo"],
                               hi=row["ref"]["hi"])
                    results.append(row)
                    f = row["ref"]
                    print(f"{net_label(net):>24} {name:>12} {particles:>2} {route:>9} {row['ms']:8.2f} "
                          f"{f['ref_ms']:7.2f} {f['ratio']:6.2f}  ({f['lo']:.2f}-{f['hi']:.2f})"
                          + "".join(f"   {row[k]['ref_ms']:15.2f} {row[k]['ratio']:6.2f}  "
                                    f"({row[k]['lo']:.2f}-{row[k]['hi']:.2f})" for k, _ in extra), flush=True)
    return results


def bench_eval(args, data):
    routes = {k: v for k, v in eval_routes(args, data).items() if k != "dataset"}
    for f in routes.values():  # warm up (and compile iwae's graph)
        f()
    print(f"\nK={args.num_samples} evaluation, {args.eval_images} images per call, "
          f"chunk {default_chunk_size(args.eval_images)} draws, {args.eval_rounds} rounds; references: naive "
          "(binary_cross_entropy_with_logits) and like-for-like (softplus, pyro_vae's evaluation form)")
    print(f"{'route':>16} {'ms/image':>9} {'naive ms':>9} {'ratio':>6}  (min-max)    {'softplus ms':>11} {'ratio':>6}  "
          "(min-max)")
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
    per_image = {k: 1e3 * statistics.median(v) / args.eval_images for k, v in times.items()}
    for name in ("iwae", "iwae-eager", "evaluate", "evaluate-no-psis"):
        row = dict(route=name, ms_per_image=per_image[name])
        for ref in ("reference", "reference-softplus"):
            row[ref] = _ratios(times[name], times[ref])
            row[ref]["ref_ms"] = per_image[ref]
        row.update(ref_ms_per_image=per_image["reference"], ratio=row["reference"]["ratio"])  # the old keys
        results.append(row)
        a, b = row["reference"], row["reference-softplus"]
        print(f"{name:>16} {row['ms_per_image']:9.2f} {a['ref_ms']:9.2f} {a['ratio']:6.3f}  ({a['lo']:.3f}-"
              f"{a['hi']:.3f})  {b['ref_ms']:11.2f} {b['ratio']:6.3f}  ({b['lo']:.3f}-{b['hi']:.3f})", flush=True)
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


def first_steps(args):
    """In this (fresh) process: seconds of ``fit``'s first step on each net's full batch (capture, Pyro's
    validation, inductor's compilation or cache lookup, one step), then of its first ragged batch (a second,
    captured graph), as JSON."""
    out = {}
    for net in args.nets.split(","):
        data, batches = setup(args, NETS[net][3])
        step = make_step(DEFAULT_OBJECTIVE, 1, data, route=args.routes.split(",")[0], net=net)
        t0 = time.perf_counter()
        step(batches[0])
        t1 = time.perf_counter()
        step(batches[1][: NETS[net][3] // 4])  # a ragged last batch
        t2 = time.perf_counter()
        out[net] = dict(first=t1 - t0, ragged=t2 - t1, graphs=step.graph.routes)
    print(json.dumps(out))


def bench_first_step(args):
    """The first-step cost with an empty inductor cache (a new machine or cache directory) and again with
    the cache the first run filled (a later run, a resume), each in a fresh process."""
    import tempfile

    cache = tempfile.mkdtemp(prefix="inductor-cache-")
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "first", "--nets", args.nets, "--routes", args.routes]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    print(f"\nfirst step of fit ({DEFAULT_OBJECTIVE}, route {args.routes.split(',')[0]}): seconds, fresh process "
          f"each, inductor cache {cache}")
    results = {}
    for label in ("empty cache", "warm cache"):
        t0 = time.perf_counter()
        line = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout.strip().splitlines()[-1]
        results[label] = json.loads(line)
        for net, row in results[label].items():
            print(f"{label:>12} {net_label(net):>26}: first step {row['first']:6.2f} s, first ragged batch "
                  f"{row['ragged']:5.2f} s  (graphs {row['graphs']}; process {time.perf_counter() - t0:.1f} s)",
                  flush=True)
    return results


def child(args):
    """Run one configuration alone and print the peak resident memory it added (JSON)."""
    if args.child == "first":
        return first_steps(args)
    kind, name, particles = args.child.split(":")
    if name == "dataset":  # the number of images rides in the third field
        args.eval_images = int(particles)
    data, batches = setup(args)
    if kind == "step":
        step = make_step(name, int(particles), data, args.validate_every_step, args.routes.split(",")[0])
        work = lambda: time_steps(step, batches)  # noqa: E731
    else:
        work = eval_routes(args, data)[name]
    reset_peak_rss()  # setup (imports, data loading) peaks higher than the workload: forget it
    base = peak_rss_kib()  # now the current RSS
    work()
    peak = peak_rss_kib()
    print(json.dumps({"config": args.child, "baseline_mib": base / 1024, "added_mib": (peak - base) / 1024}))


def bench_memory(args):
    configs = [f"step:reference-{o}:{p}" for p in args.particles for o in args.objectives.split(",")]
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
               "--num-samples", str(args.num_samples), "--device", args.device, "--routes", args.routes]
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

    route = args.routes.split(",")[0]
    step = make_step(DEFAULT_OBJECTIVE, 1, data, args.validate_every_step, route)
    time_steps(step, batches[:3])
    prof = cProfile.Profile()
    prof.runcall(time_steps, step, batches * 5)
    print(f"\ncProfile of {5 * len(batches)} '{DEFAULT_OBJECTIVE}' steps (P=1, route {route}), by internal time:")
    pstats.Stats(prof).sort_stats("tottime").print_stats(18)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objectives", default="meanfield,stl,iwae:5,iwae-dreg:5",
                   help="comma-separated objectives (also trace, jit-trace, jit-meanfield, iwae:K)")
    p.add_argument("--routes", default="compiled,eager",
                   help="comma-separated steps of fit to time: compiled (the default), captured, eager")
    p.add_argument("--nets", default="demo,small,deep", help=f"comma-separated networks: {', '.join(NETS)} "
                   "(784-400-20 B=128, 784-16-2 B=128, 784-200-200-50 tanh B=20)")
    p.add_argument("--particles", type=int, nargs="+", default=[1])
    p.add_argument("--batch-size", type=int, default=128, help="minibatch of --memory and --profile (the demo net)")
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
    p.add_argument("--first-step", action="store_true",
                   help="also measure the first step's cost (capture and compilation), empty and warm inductor cache")
    p.add_argument("--profile", action="store_true", help="cProfile the default objective's steps")
    p.add_argument("--json", help="write all results to this file")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--no-validation", action="store_true",
                   help="turn Pyro's distribution checks off (on by default in Pyro, and in pyro-vae train)")
    p.add_argument("--validate-every-step", action="store_true",
                   help="keep Pyro's checks on every step (eager route only: a graph cannot hold them); by default "
                        "the step is fit's: checks once per graph (or on the first eager step), in the warm-up")
    p.add_argument("--default-adam", action="store_true", help="also time the references with torch's default Adam")
    p.add_argument("--reference-compiled", action="store_true",
                   help="also time the hand-written step under torch.compile (inductor; compiles once per row)")
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
    if args.no_validation:
        checks = "Pyro validation off"
    elif args.validate_every_step:
        checks = "Pyro validation on every step (timed)"
    else:
        checks = "Pyro validation once per graph or on the first eager step (in the warm-up, not in the timed steps)"
    print(f"torch {torch.__version__}, pyro {pyro.__version__}, threads {torch.get_num_threads()}, {os.cpu_count()} "
          f"CPUs, device {args.device}; {args.steps} steps x {args.rounds} rounds; default objective "
          f"{DEFAULT_OBJECTIVE}, default step {TrainConfig().step}; {checks}; load average {os.getloadavg()[0]:.2f}")
    out = {"validation": checks, "torch": torch.__version__, "pyro": pyro.__version__,
           "threads": torch.get_num_threads(),
           "load_before": os.getloadavg()}
    if not args.skip_steps:
        nets = {net: setup(args, NETS[net][3]) for net in args.nets.split(",")}
        out["steps"] = bench_steps(args, nets)
    if not args.skip_eval:
        out["eval"] = bench_eval(args, data)
    if args.memory:
        out["memory"] = bench_memory(args)
    if args.first_step:
        out["first_step"] = bench_first_step(args)
    if args.profile:
        profile(args, data, batches)
    out["load_after"] = os.getloadavg()
    print(f"\nload average before {out['load_before'][0]:.2f}, after {out['load_after'][0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()

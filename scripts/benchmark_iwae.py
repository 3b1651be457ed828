"""Speed of the IWAE estimate: pyro_vae's trace route against a hand-written vectorised PyTorch loop.

Both compute log (1/K) sum_k p(x, z_k) / q(z_k | x) for the same network (the `make demo` VAE:
784-400-20, Bernoulli likelihood, diagonal Normal posterior, standard normal prior), with the same
chunking and the same float64 streaming logsumexp; they differ only in how the log weights are
obtained: Pyro traces under a particle plate (pyro_vae.bounds.iwae), or direct tensor code. Rounds
alternate between the two in one process; the figure is the median of per-round time ratios.

    python scripts/benchmark_iwae.py                      # random weights, 100 test images, K=5000
    python scripts/benchmark_iwae.py --run runs/demo      # a trained run's network and data
"""

import argparse
import math
import statistics
import time

import pyro
import torch
import torch.nn.functional as F

from pyro_vae.bounds import StreamingLogMeanExp, chunk_sizes, default_chunk_size, iwae


@torch.no_grad()
def torch_iwae(vae, x, num_samples, chunk_size):
    """Hand-written IWAE for a DiagonalNormal / StandardNormal / Bernoulli VAE: ``(B,)`` float64."""
    loc, scale = vae.posterior.loc_scale(vae.encoder(x))  # (B, Z), (B, Z)
    log_2pi = math.log(2 * math.pi)
    acc = StreamingLogMeanExp()
    for k in chunk_sizes(num_samples, min(chunk_size, num_samples)):
        eps = torch.randn((k,) + loc.shape, device=loc.device)  # (k, B, Z)
        z = loc + scale * eps
        logits = vae.decoder(z)  # (k, B, D)
        log_lik = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
        log_prior = -0.5 * (z**2 + log_2pi).sum(-1)
        log_q = -0.5 * (eps**2 + log_2pi).sum(-1) - scale.log().sum(-1)
        acc.update(log_lik + log_prior - log_q)  # (k, B)
        del eps, z, logits  # free this chunk's (k, B, D) tensors before the next chunk allocates
    return acc.value()


def build(args):
    if args.run:
        from pyro_vae.experiment import load_run

        loaded = load_run(args.run)
        return loaded.model, loaded.data.x_test[: args.images]
    from pyro_vae import MLP, VAE, Bernoulli, DiagonalNormal, StandardNormal, load_dataset

    torch.manual_seed(0)
    post, lik = DiagonalNormal(), Bernoulli()
    vae = VAE(MLP(784, [400], post.num_params(20)), MLP(20, [400], lik.num_params(784)),
              prior=StandardNormal(20), likelihood=lik, posterior=post).eval()
    return vae, load_dataset("mnist5k").x_test[: args.images]


def interleaved_rounds(routes, rounds):
    """Time ``routes["pyro"]`` against ``routes["torch"]`` in ``rounds`` rounds, alternating which
    runs first; print each round and return ``(times, ratios)``: seconds per route, pyro / torch."""
    ratios, times = [], {"pyro": [], "torch": []}
    for r in range(rounds):
        order = ["pyro", "torch"] if r % 2 == 0 else ["torch", "pyro"]
        for name in order:
            t0 = time.perf_counter()
            routes[name]()
            times[name].append(time.perf_counter() - t0)
        ratios.append(times["pyro"][-1] / times["torch"][-1])
        print(f"round {r + 1}: pyro {times['pyro'][-1]:.2f}s  torch {times['torch'][-1]:.2f}s  "
              f"ratio {ratios[-1]:.3f}", flush=True)
    return times, ratios


def print_profile(route, lines):
    """cProfile of one call of ``route``, its ``lines`` costliest functions by own time."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(route)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="a run directory (default: the demo architecture with random weights)")
    p.add_argument("--images", type=int, default=100, help="test images per estimate (default 100)")
    p.add_argument("--num-samples", type=int, default=5000, help="K (default 5000)")
    p.add_argument("--chunk-size", type=int, help="draws per pass (default pyro_vae's: ~8192 rows)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default torch's)")
    p.add_argument("--no-validation", action="store_true", help="turn Pyro's distribution checks off")
    p.add_argument("--profile", action="store_true", help="print a cProfile of one Pyro-route estimate")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    pyro.enable_validation(not args.no_validation)
    vae, x = build(args)
    chunk = args.chunk_size or default_chunk_size(len(x))
    routes = {"pyro": lambda: iwae(vae.model, vae.guide, x, args.num_samples, chunk),
              "torch": lambda: torch_iwae(vae, x, args.num_samples, chunk)}
    pyro.set_rng_seed(0)
    a, b = routes["pyro"](), routes["torch"]()  # warm up; both estimate the same quantity
    print(f"{len(x)} images, K={args.num_samples}, chunk {chunk} draws ({chunk * len(x)} rows), "
          f"{torch.get_num_threads()} threads, validation {'off' if args.no_validation else 'on'}")
    print(f"mean estimate: pyro {a.mean().item():.3f}, torch {b.mean().item():.3f} nats")
    times, ratios = interleaved_rounds(routes, args.rounds)
    print(f"median seconds: pyro {statistics.median(times['pyro']):.2f}, torch {statistics.median(times['torch']):.2f}")
    print(f"ratio pyro / torch (median of per-round ratios): {statistics.median(ratios):.3f}")
    if args.profile:
        print_profile(routes["pyro"], 12)


if __name__ == "__main__":
    main()

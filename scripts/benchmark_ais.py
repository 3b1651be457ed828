"""Speed of AIS: pyro_vae's trace route against a hand-written batched PyTorch AIS on the same decoder.

Both run the same algorithm on the same network (a VAE with a diagonal Normal posterior, standard
normal prior and Bernoulli likelihood; by default the `make demo` architecture, 784-400-20): C chains
per image plus one pilot chain as one batch of (C + 1) x B rows, the same schedule of betas, L
leapfrog steps per HMC transition, the step size adapted toward acceptance 0.65 (x1.02 / x0.98) by
the pilot and followed by the C counted chains, float64 log-weight accumulation, q0 = the
encoder's q(z|x). They differ only in how log p(x, z), log q0(z) and their gradients are obtained:
Pyro traces of the model and guide conditioned on the chains' latent values (pyro_vae.ais, which after
the first evaluation replays them as a compiled graph, ``--graph``), or
closed forms and one backward pass through the decoder
(`torch_ais` below, written independently of pyro_vae's AIS code). Rounds alternate between the two
in one process; the figure is the median of the per-round time ratios.

    python scripts/benchmark_ais.py                              # random weights, 50 images
    python scripts/benchmark_ais.py --run runs/demo --threads 1  # a trained run's network and data
"""

import argparse
import math
import os
import statistics
import sys
import time

import pyro
import torch
import torch.nn.functional as F

from pyro_vae.diagnostics.ais import ais, make_betas

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark_iwae import build, interleaved_rounds, print_profile  # noqa: E402  the IWAE benchmark's model, images and timing

LOG_2PI = math.log(2 * math.pi)


@torch.no_grad()
def torch_ais(vae, x, betas, num_chains, leapfrog_steps, step_size=0.05, batch_size=None):
    """Hand-written AIS for a DiagonalNormal / StandardNormal / Bernoulli VAE: ``(B,)`` float64."""
    batch_size = batch_size or max(1, 8192 // (num_chains + 1))
    out = []
    for start in range(0, len(x), batch_size):
        out.append(_torch_ais_chunk(vae, x[start: start + batch_size], betas.tolist(), num_chains,
                                    leapfrog_steps, step_size))
    return torch.cat(out)


def _torch_ais_chunk(vae, x, betas, num_chains, leapfrog_steps, step_size):
    loc, scale = vae.posterior.loc_scale(vae.encoder(x))  # (B, Z)
    c, (b, zdim) = num_chains + 1, loc.shape  # chain 0 is the pilot
    inv_var = scale.pow(-2)
    log_q_const = -0.5 * zdim * LOG_2PI - scale.log().sum(-1)  # (B,)
    xe = x.expand(c, *x.shape)  # (C, B, D)

    def evaluate(z):  # z (C, B, Z) -> log q0, log p(x, z), their gradients
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            logits = vae.decoder(z)  # (C, B, D)
            log_lik = -F.binary_cross_entropy_with_logits(logits, xe, reduction="none").sum(-1)  # (C, B)
            g_lik, = torch.autograd.grad(log_lik.sum(), z)
        z = z.detach()
        log_p = log_lik.detach() - 0.5 * (z.pow(2).sum(-1) + zdim * LOG_2PI)
        log_q = log_q_const - 0.5 * ((z - loc).pow(2) * inv_var).sum(-1)
        return log_q, log_p, -(z - loc) * inv_var, g_lik - z

    z = loc + scale * torch.randn(c, b, zdim)
    lq, lp, gq, gp = evaluate(z)
    log_w = torch.zeros(c, b, dtype=torch.float64)
    pilot_eps = torch.full((1, b, 1), step_size)
    for t in range(1, len(betas)):
        log_w += (betas[t] - betas[t - 1]) * (lp.double() - lq.double())
        if t == len(betas) - 1:
            break
        beta = betas[t]
        eps = pilot_eps.expand(c, b, 1)
        r = torch.randn_like(z)
        h0 = -((1 - beta) * lq + beta * lp) + 0.5 * r.pow(2).sum(-1)
        z1, r = z, r + 0.5 * eps * ((1 - beta) * gq + beta * gp)
        for step in range(leapfrog_steps):
            z1 = z1 + eps * r
            lq1, lp1, gq1, gp1 = evaluate(z1)
            r = r + (0.5 if step == leapfrog_steps - 1 else 1.0) * eps * ((1 - beta) * gq1 + beta * gp1)
        h1 = -((1 - beta) * lq1 + beta * lp1) + 0.5 * r.pow(2).sum(-1)
        log_accept = torch.nan_to_num(h0 - h1, nan=-math.inf, posinf=-math.inf)
        accept = torch.rand_like(log_accept).log() < log_accept
        z = torch.where(accept[..., None], z1, z)
        lq, lp = torch.where(accept, lq1, lq), torch.where(accept, lp1, lp)
        gq, gp = torch.where(accept[..., None], gq1, gq), torch.where(accept[..., None], gp1, gp)
        up = log_accept[:1].clamp(max=0).exp() > 0.65  # the pilot's acceptance
        pilot_eps = (pilot_eps * torch.where(up, 1.02, 0.98)[..., None]).clamp(1e-4, 1.0)
    return torch.logsumexp(log_w[1:], 0) - math.log(c - 1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="a run directory (default: the demo architecture with random weights)")
    p.add_argument("--images", type=int, default=50, help="test images per estimate (default 50)")
    p.add_argument("--steps", type=int, default=100, help="annealing steps T (default 100)")
    p.add_argument("--chains", type=int, default=16, help="chains per image (default 16)")
    p.add_argument("--leapfrog", type=int, default=10, help="leapfrog steps per transition (default 10)")
    p.add_argument("--schedule", default="sigmoid", help="sigmoid | linear (default sigmoid)")
    p.add_argument("--batch-size", type=int, help="images per chunk (default: about 8192 rows)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default torch's)")
    p.add_argument("--no-validation", action="store_true", help="turn Pyro's distribution checks off")
    p.add_argument("--graph", default="compiled", help="compiled (default) | captured | eager: pyro_vae's route for "
                   "the log-densities after their first evaluation")
    p.add_argument("--profile", action="store_true", help="print a cProfile of one Pyro-route estimate")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    pyro.enable_validation(not args.no_validation)
    vae, x = build(args)
    betas = make_betas(args.schedule, args.steps)
    routes = {"pyro": lambda: ais(vae.model, vae.guide, x, args.steps, args.chains, args.leapfrog, args.schedule,
                                  batch_size=args.batch_size, graph=args.graph).log_likelihood,
              "torch": lambda: torch_ais(vae, x, betas, args.chains, args.leapfrog, batch_size=args.batch_size)}
    pyro.set_rng_seed(0)
    t0 = time.perf_counter()
    a = routes["pyro"]()  # warm up (the first call builds and compiles the graph); both estimate the same quantity
    first = time.perf_counter() - t0
    b = routes["torch"]()
    print(f"{len(x)} images, T={args.steps} ({args.schedule}), {args.chains} chains, L={args.leapfrog}, "
          f"{torch.get_num_threads()} threads, validation {'off' if args.no_validation else 'on, first evaluation'}, "
          f"pyro_vae route {args.graph}; load average {os.getloadavg()[0]:.2f}; pyro's first call {first:.1f} s")
    print(f"mean estimate: pyro {a.mean().item():.3f}, torch {b.mean().item():.3f} nats "
          f"(paired difference {(a - b).mean().item():+.3f} +- {(a - b).std().item() / math.sqrt(len(x)):.3f})")
    times, ratios = interleaved_rounds(routes, args.rounds)
    per_image = {k: statistics.median(v) / len(x) for k, v in times.items()}
    print(f"median seconds per image: pyro {per_image['pyro']:.3f}, torch {per_image['torch']:.3f}")
    print(f"ratio pyro / torch (median of per-round ratios): {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")
    if args.profile:
        print_profile(routes["pyro"], 15)


if __name__ == "__main__":
    main()

"""Training-step speed of each Pyro objective against a hand-written PyTorch VAE, same process.

The reference (in this file only) uses the same encoder/decoder modules' architecture, the summed
binary cross-entropy, the closed-form Gaussian KL and the same vectorised particles. Rounds are
interleaved (reference, objective, reference, objective, ...) and each round's time ratio is taken
against the reference run in the same round; the script prints the median ratio and its spread.

    python scripts/benchmark_speed.py                  # 784-400-20 MLP, batch 128
    python scripts/benchmark_speed.py --particles 10 --rounds 15
"""

import argparse
import copy
import statistics
import time

import pyro
import torch
import torch.nn.functional as F

from pyro_vae import TrainConfig, load_dataset, make_elbo
from pyro_vae.build import build_vae


class ReferenceStep:
    """One Adam step of a hand-written VAE: BCE + closed-form KL, P vectorised particles."""

    def __init__(self, vae, num_data, particles, lr=1e-3):
        self.encoder, self.decoder = copy.deepcopy(vae.encoder), copy.deepcopy(vae.decoder)
        self.params = list(self.encoder.parameters()) + list(self.decoder.parameters())
        self.opt = torch.optim.Adam(self.params, lr=lr)
        self.num_data, self.particles = num_data, particles

    def __call__(self, x):  # x: (B, D)
        self.opt.zero_grad(set_to_none=True)
        loc, rho = self.encoder(x).chunk(2, -1)  # (B, Z)
        scale = F.softplus(rho) + 1e-5
        z = loc + scale * torch.randn((self.particles, *loc.shape))  # (P, B, Z)
        logits = self.decoder(z)  # (P, B, D)
        rec = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
        kl = 0.5 * (loc**2 + scale**2 - 1 - 2 * scale.log()).sum(-1)  # (B,)
        loss = -(rec.mean(0) - kl).sum() * (self.num_data / x.shape[0])
        loss.backward()
        self.opt.step()
        return loss.item()


class PyroStep:
    def __init__(self, vae, elbo, num_data, lr=1e-3):
        self.vae, self.elbo, self.num_data = vae, elbo, num_data
        self.opt = torch.optim.Adam(vae.parameters(), lr=lr)

    def __call__(self, x):
        self.opt.zero_grad(set_to_none=True)
        loss = self.elbo.loss_and_grads(self.vae.model, self.vae.guide, x, num_data=self.num_data)
        self.opt.step()
        return loss


def time_steps(step, batches):
    t = time.perf_counter()
    for x in batches:
        step(x)
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objectives", default="trace,meanfield,jit-trace,jit-meanfield")
    p.add_argument("--particles", type=int, nargs="+", default=[1, 10])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="steps per timed block")
    p.add_argument("--rounds", type=int, default=11)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_dataset("mnist5k")
    gen = torch.Generator().manual_seed(0)
    batches = [torch.bernoulli(data.x_train[i * args.batch_size:(i + 1) * args.batch_size], generator=gen)
               for i in range(args.steps)]
    print(f"torch {torch.__version__}, pyro {pyro.__version__}, threads {torch.get_num_threads()}, "
          f"784-400-20 MLP, batch {args.batch_size}, {args.steps} steps x {args.rounds} rounds")
    print(f"{'objective':>14} {'P':>3} {'ms/step':>8} {'ref ms':>7} {'ratio':>6}  (min-max ratio)")
    for particles in args.particles:
        for name in args.objectives.split(","):
            pyro.set_rng_seed(0)
            vae = build_vae(TrainConfig(), data.data_dim)
            ours = PyroStep(vae, make_elbo(name, particles), data.num_train)
            ref = ReferenceStep(vae, data.num_train, particles)
            for step in (ours, ref):  # warm up (and compile the JIT objectives)
                time_steps(step, batches[:3])
            ratios, t_ours, t_ref = [], [], []
            for _ in range(args.rounds):
                r = time_steps(ref, batches)
                o = time_steps(ours, batches)
                ratios.append(o / r)
                t_ours.append(o)
                t_ref.append(r)
            print(f"{name:>14} {particles:>3} {1e3 * statistics.median(t_ours) / args.steps:8.2f} "
                  f"{1e3 * statistics.median(t_ref) / args.steps:7.2f} {statistics.median(ratios):6.2f}  "
                  f"({min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()

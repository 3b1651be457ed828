"""Test ELBO of each prior family under the same training budget.

Trains the same VAE (the ``pyro-vae train`` defaults unless overridden: 784-400-20, Bernoulli,
diagonal Normal posterior, ``meanfield``, dynamically binarised mnist5k) once per prior, with the
same seed, epochs and optimiser, and prints one row per prior: the final test ELBO (nats per image,
analytic KL where the pair has one, a one-sample KL estimate otherwise), its reconstruction and KL
terms, its standard error over test images, the paired difference to the first prior (same test
images, same evaluation draws' seed) with its standard error, optionally an IWAE bound (``--iwae-samples K``), and
seconds per epoch.

    python scripts/compare_priors.py                                   # normal, mog:10, vamp:100; 20 epochs
    python scripts/compare_priors.py --priors normal vamp:500 --epochs 50 --out runs/priors
"""

import argparse
import json
import os
import statistics
import time

import pyro
import torch

from pyro_vae.experiment.build import build_data, build_elbo, build_model
from pyro_vae.experiment.config import TrainConfig
from pyro_vae.experiment.runs import RunDir
from pyro_vae.inference.traces import elbo_terms
from pyro_vae.inference.train import fit


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--priors", nargs="+", default=["normal", "mog:10", "vamp:100"], help="prior specs to compare")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--likelihood", default="bernoulli")
    p.add_argument("--posterior", default="diag")
    p.add_argument("--elbo", default="meanfield")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch intra-op threads (default torch's choice)")
    p.add_argument("--iwae-samples", type=int, default=0, help="also report the IWAE bound with K samples (0: off)")
    p.add_argument("--out", help="keep each run directory under OUT/<prior> (default: not kept)")
    return p.parse_args(argv)


@torch.no_grad()
def test_terms(vae, x, batch=500, seed=0):
    """Per-image one-sample ELBO terms on ``x`` with a fixed seed: dict of (N,) tensors."""
    pyro.set_rng_seed(seed)
    parts = [elbo_terms(vae.model, vae.guide, x[i : i + batch]) for i in range(0, len(x), batch)]
    return {k: torch.cat([p[k] for p in parts]).double() for k in ("elbo", "reconstruction", "kl")}


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows, first = [], None
    for prior in args.priors:
        config = TrainConfig(dataset=args.dataset, prior=prior, likelihood=args.likelihood, posterior=args.posterior,
                             elbo=args.elbo, epochs=args.epochs, seed=args.seed).validate()
        pyro.clear_param_store()
        data = build_data(config)
        pyro.set_rng_seed(config.seed)
        vae = build_model(config, data)
        run = None
        if args.out:
            run = RunDir(os.path.join(args.out, prior.replace(":", "-")))
            run.create(config)
        history = fit(vae, data, build_elbo(config, vae), epochs=config.epochs, batch_size=config.batch_size,
                      lr=config.lr, seed=config.seed, run=run, quiet=True)
        vae.eval()
        terms = test_terms(vae, data.x_test)
        row = {"prior": prior, "test_elbo": terms["elbo"].mean().item(),
               "stderr": (terms["elbo"].std() / len(terms["elbo"]) ** 0.5).item(),
               "reconstruction": terms["reconstruction"].mean().item(), "kl": terms["kl"].mean().item(),
               "seconds_per_epoch": statistics.median(r["seconds"] for r in history),
               "num_parameters": sum(p.numel() for p in vae.parameters())}
        first = terms["elbo"] if first is None else first
        diff = terms["elbo"] - first
        row["diff"], row["diff_stderr"] = diff.mean().item(), (diff.std() / len(diff) ** 0.5).item()
        if args.iwae_samples:
            from pyro_vae.bounds import iwae

            t0 = time.perf_counter()
            pyro.set_rng_seed(args.seed)
            row[f"iwae_{args.iwae_samples}"] = iwae(vae.model, vae.guide, data.x_test, args.iwae_samples).mean().item()
            row["iwae_seconds"] = time.perf_counter() - t0
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{args.epochs} epochs each, {args.dataset}, {args.likelihood}, {args.posterior}, {args.elbo}, "
          f"seed {args.seed}; nats per test image (higher is better)")
    extra = f" | IWAE-{args.iwae_samples}" if args.iwae_samples else ""
    print(f"| prior | test ELBO (+- s.e.) | vs {rows[0]['prior']} (paired s.e.) | reconstruction | KL{extra} "
          "| s/epoch |")
    print("| --- | --- | --- | --- | ---" + (" | ---" if extra else "") + " | --- |")
    for r in rows:
        iw = f" | {r[f'iwae_{args.iwae_samples}']:.2f}" if extra else ""
        print(f"| `{r['prior']}` | {r['test_elbo']:.2f} (+- {r['stderr']:.2f}) | {r['diff']:+.2f} "
              f"(+- {r['diff_stderr']:.2f}) | {r['reconstruction']:.2f} | "
              f"{r['kl']:.2f}{iw} | {r['seconds_per_epoch']:.2f} |")


if __name__ == "__main__":
    main()

"""How many AIS steps settle log p(x)? AIS and the BDMC gap at several step counts on a trained run.

For the first N test images of a run: the ELBO and L_S (S importance samples, as `pyro-vae evaluate`)
and, for each step count T, AIS (C chains, L leapfrog steps, q0 = the encoder) on the first N_T of
those images, its paired difference to L_S on the same images, and the BDMC gap on P_T points
simulated from the model with the same settings; seconds per image of each. Writes OUT.json and
prints a markdown table.

    python scripts/ais_steps.py runs/demo --threads 1                      # T = 100, 1000, 10000
    python scripts/ais_steps.py runs/demo --steps 100,1000 --chains 16,16 --images 20,20 --bdmc 10,10
"""

import argparse
import json
import math
import os
import time

import pyro
import torch

from pyro_vae.diagnostics.ais import ais
from pyro_vae.diagnostics.bdmc import bdmc
from pyro_vae.diagnostics.tightness import dataset_statistics
from pyro_vae.experiment import load_run
from pyro_vae.experiment.runs import atomic_write_json, json_safe


def ints(text):
    return [int(v) for v in text.split(",")]


def mean_se(values):
    values = values.double()
    return values.mean().item(), (values.std().item() / math.sqrt(values.numel()) if values.numel() > 1 else math.nan)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="a run directory written by pyro-vae train")
    p.add_argument("--num-samples", type=int, default=5000, help="S of L_S (default 5000)")
    p.add_argument("--iwae-images", type=int, default=20, help="N: first test images scored by L_S (default 20)")
    p.add_argument("--steps", type=ints, default=[100, 1000, 10000], help="step counts T (default 100,1000,10000)")
    p.add_argument("--chains", type=ints, default=[16, 16, 4], help="chains per step count (default 16,16,4)")
    p.add_argument("--images", type=ints, default=[20, 20, 10], help="AIS images per step count (default 20,20,10)")
    p.add_argument("--bdmc", type=ints, default=[10, 10, 4], help="BDMC points per step count, 0: none "
                                                                  "(default 10,10,4)")
    p.add_argument("--leapfrog", type=int, default=10, help="leapfrog steps per transition (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch intra-op threads")
    p.add_argument("--out", help="JSON file (default RUN/ais_steps.json)")
    args = p.parse_args(argv)
    if not len(args.steps) == len(args.chains) == len(args.images) == len(args.bdmc):
        p.error("--steps, --chains, --images and --bdmc need one value per step count")
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_run(args.run)
    vae = loaded.model
    x = loaded.data.x_test[: args.iwae_images]
    pyro.set_rng_seed(args.seed)
    t0 = time.perf_counter()
    stats = dataset_statistics(vae.model, vae.guide, x, args.num_samples)
    iwae_seconds = (time.perf_counter() - t0) / len(x)
    l_s = stats["curve"][args.num_samples]
    out = {"run": args.run, "epoch": loaded.epoch, "num_samples": args.num_samples, "iwae_images": len(x),
           "elbo": mean_se(stats["elbo"]), "iwae": mean_se(l_s), "iwae_seconds_per_image": iwae_seconds,
           "threads": torch.get_num_threads(), "leapfrog_steps": args.leapfrog, "rows": []}
    print(f"{args.run} (epoch {loaded.epoch}): {len(x)} test images, ELBO {out['elbo'][0]:.2f}, "
          f"L_{args.num_samples} {out['iwae'][0]:.2f} ({iwae_seconds:.2f} s/image)", flush=True)
    for steps, chains, images, points in zip(args.steps, args.chains, args.images, args.bdmc, strict=False):
        pyro.set_rng_seed(args.seed)
        res = ais(vae.model, vae.guide, x[:images], steps, chains, args.leapfrog)
        diff = res.log_likelihood - l_s[:images]
        row = {"num_steps": steps, "num_chains": chains, "images": images, "ais": mean_se(res.log_likelihood),
               "iwae_same_images": mean_se(l_s[:images]), "ais_minus_iwae": mean_se(diff),
               "acceptance": res.acceptance.mean().item(), "chain_spread_median": res.chain_spread.median().item(),
               "ais_seconds_per_image": res.seconds / images}
        if points:
            pyro.set_rng_seed(args.seed)
            sand = bdmc(vae.model, vae.guide, points, steps, x=x, num_chains=chains, leapfrog_steps=args.leapfrog)
            row.update(bdmc_points=points, bdmc_gap=mean_se(sand.gap), bdmc_gap_max=sand.gap.max().item(),
                       bdmc_lower=mean_se(sand.lower), bdmc_upper=mean_se(sand.upper),
                       bdmc_seconds_per_point=sand.seconds / points)
        out["rows"].append(row)
        print(json.dumps(json_safe(row)), flush=True)
        atomic_write_json(args.out or os.path.join(args.run, "ais_steps.json"), json_safe(out))
    print(f"\n| T | chains | images | AIS | L_{args.num_samples} same images | AIS - L_{args.num_samples} (paired se) "
          f"| acceptance | s/image AIS | BDMC points | BDMC gap mean (se) | gap max | s/point BDMC |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in out["rows"]:
        b = (f"{r['bdmc_points']} | {r['bdmc_gap'][0]:.2f} ({r['bdmc_gap'][1]:.2f}) | {r['bdmc_gap_max']:.2f} | "
             f"{r['bdmc_seconds_per_point']:.2f}") if "bdmc_gap" in r else " | | |"
        print(f"| {r['num_steps']} | {r['num_chains']} | {r['images']} | {r['ais'][0]:.2f} | "
              f"{r['iwae_same_images'][0]:.2f} | {r['ais_minus_iwae'][0]:+.2f} ({r['ais_minus_iwae'][1]:.2f}) | "
              f"{r['acceptance']:.2f} | {r['ais_seconds_per_image']:.2f} | {b} |")
    print(f"\nELBO {out['elbo'][0]:.2f}, L_{args.num_samples} {out['iwae'][0]:.2f} on {len(x)} images; "
          f"IWAE-{args.num_samples}: {iwae_seconds:.2f} s/image")


if __name__ == "__main__":
    main()

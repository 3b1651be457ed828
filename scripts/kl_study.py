"""Sampled against analytic KL, from scratch: train a run, then measure it with ``compare-kl``.

1. ``pyro-vae train --out OUT ...`` with the chosen configuration (every option this script does not
   know is passed to ``pyro-vae train``: ``--dataset``, ``--prior``, ``--latent-dim``, ...);
2. ``pyro-vae compare-kl OUT`` with the study's options: KL audit, Monte-Carlo KL check, ELBO and
   gradient variance of ``trace`` and ``meanfield`` at several particle counts, and (by default here)
   the training outcome of both objectives over several seeds.

Results: ``OUT/kl_comparison.json``, ``OUT/kl_variance_ratio.png``, ``OUT/kl_learning_curves.png``, and
(compare-kl's defaults) the gradient estimators' variance and SNR with ``OUT/gradient_snr.png``.

    python scripts/kl_study.py --out runs/kl-demo                       # the `make demo` model
    python scripts/kl_study.py --out runs/kl-digits --dataset digits --hidden 64 --latent-dim 4 \\
        --epochs 30 --outcome-epochs 30 --seeds 0 1 2 3 4
    python scripts/kl_study.py --out runs/kl-mog --prior mog:10         # a prior without analytic KL
"""

import argparse
import json
import os
import sys
import time

from pyro_vae.cli import main as pyro_vae


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="Any other option goes to "
                                "`pyro-vae train` (see pyro-vae train --help); its default --epochs here is 50.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--out", help="new run directory (default runs/kl-study-<timestamp>)")
    a("--reuse", action="store_true", help="OUT already holds a trained run: skip step 1")
    a("--repeats", type=int, default=200, help="paired gradient estimates per objective and P (default 200)")
    a("--num-particles", type=int, nargs="+", default=[1, 4, 16], metavar="P", help="default 1 4 16")
    a("--kl-samples", type=int, default=100, help="draws per test point in the KL check (default 100)")
    a("--kl-points", type=int, default=1000, help="test points in the KL check (default 1000)")
    a("--outcome-epochs", type=int, default=10, help="epochs per outcome run; 0 skips the outcome (default 10)")
    a("--seeds", type=int, nargs="+", default=[0, 1, 2], metavar="S", help="outcome seeds (default 0 1 2)")
    a("--iwae-samples", type=int, default=100, help="K of the outcome's IWAE log-likelihood (default 100)")
    a("--threads", type=int, help="torch intra-op threads")
    return p.parse_known_args(argv)


def main(argv=None):
    args, train_args = parse(argv)
    out = args.out or os.path.join("runs", time.strftime("kl-study-%Y%m%d-%H%M%S"))
    threads = ["--threads", str(args.threads)] if args.threads else []
    t0 = time.perf_counter()
    if not args.reuse:
        if "--epochs" not in train_args:
            train_args += ["--epochs", "50"]
        code = pyro_vae(["train", "--out", out, "--quiet", *threads, *train_args])
        if code:
            return code
    compare = ["compare-kl", out, "--repeats", str(args.repeats), "--num-particles", *map(str, args.num_particles),
               "--kl-samples", str(args.kl_samples), "--kl-points", str(args.kl_points),
               "--iwae-samples", str(args.iwae_samples), *threads]
    if args.outcome_epochs:
        compare += ["--outcome-epochs", str(args.outcome_epochs), "--seeds", *map(str, args.seeds)]
    code = pyro_vae(compare)
    if code:
        return code
    with open(os.path.join(out, "kl_comparison.json")) as f:
        result = json.load(f)
    print(json.dumps(summary(result), indent=2))
    print(f"study finished in {time.perf_counter() - t0:.0f} s; results in {out}")
    return 0


def summary(result):
    """The numbers worth quoting: mean |z|, variance ratios per group, outcome per objective."""
    check = result["kl_check"]
    out = {"audit": {site: a["kl"] for site, a in result["audit"].items()},
           "mean_abs_z": check["mean_abs_z"], "expected_mean_abs_z": check.get("expected_mean_abs_z"),
           "mean_abs_z_se": check.get("mean_abs_z_se"),
           "variance_ratio_meanfield_over_trace": result["variance"]["ratio"]}
    if "estimators" in result:
        out["gradient_snr"] = {name: {g: r["groups"][g]["snr"] for g in r["groups"]}
                               for name, r in result["estimators"]["results"].items()}
    if "snr_curve" in result:
        out["snr_against_k"] = {"ks": result["snr_curve"]["ks"], **result["snr_curve"]["snr"]}
    if "outcome" in result:
        out["outcome"] = result["outcome"]["summary"]
    return out


if __name__ == "__main__":
    sys.exit(main())

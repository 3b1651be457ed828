"""The four autoencoders of the lecture and the VAE, same data and budget: what each code is worth.

Trains ``ae``, ``sparse-ae``, ``denoising-ae``, ``contractive-ae`` and ``vae`` with the same networks,
epochs and seed, then reports on the test split: reconstruction error on clean and on corrupted
inputs (the denoising AE's corruption), code sparsity, the encoder's Jacobian norm, and linear-probe
accuracy next to PCA codes of the same size and raw pixels. Prints a Markdown table.

    python scripts/compare_autoencoders.py                       # mnist5k, 20 epochs, Z = 20
    python scripts/compare_autoencoders.py --dataset digits --epochs 30 --latent-dim 8 --hidden 64
"""

import argparse
import json

import pyro

from pyro_vae import TrainConfig, fit
from pyro_vae.diagnostics.representations import report
from pyro_vae.experiment.build import build_data, build_elbo, build_model, build_noise

MODELS = ["ae", "sparse-ae", "denoising-ae", "contractive-ae", "vae"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = TrainConfig()
    p.add_argument("--dataset", default=d.dataset)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--latent-dim", type=int, default=d.latent_dim)
    p.add_argument("--hidden", default="400", help="comma-separated hidden sizes")
    p.add_argument("--sparsity", type=float, default=d.sparsity)
    p.add_argument("--noise", default=d.noise)
    p.add_argument("--contraction", type=float, default=d.contraction)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()

    rows = {}
    for name in args.models:
        config = TrainConfig(model=name, dataset=args.dataset, epochs=args.epochs, latent_dim=args.latent_dim,
                             hidden=[int(h) for h in args.hidden.split(",")], sparsity=args.sparsity,
                             noise=args.noise, contraction=args.contraction, seed=args.seed).validate()
        data = build_data(config)
        pyro.set_rng_seed(config.seed)
        model = build_model(config, data)
        history = fit(model, data, build_elbo(config, model), epochs=config.epochs, batch_size=config.batch_size,
                      lr=config.lr, seed=config.seed, quiet=True)
        rows[name] = {**report(model, data, build_noise(config.noise, data.data_dim)),
                      "seconds_per_epoch": sum(r["seconds"] for r in history) / len(history)}
        print(f"{name}: done", flush=True)

    first = next(iter(rows.values()))
    print(f"\n{args.dataset}, {args.epochs} epochs, Z={args.latent_dim}, hidden {args.hidden}, seed {args.seed}; "
          f"corruption {first['corruption']}; errors in nats per image (Bernoulli cross-entropy)\n")
    print("| model | rec. error clean | rec. error corrupted | mean abs h | share abs h < 0.05 | "
          "mean Jacobian norm^2 | probe acc. | PCA probe | pixel probe |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['reconstruction_error']:.1f} | {r['reconstruction_error_corrupted']:.1f} | "
              f"{r['code_mean_abs']:.3f} | {r['code_frac_near_zero']:.3f} | {r['jacobian_frobenius_sq']:.2f} | "
              f"{r['probe_accuracy']:.3f} | {r['probe_accuracy_pca']:.3f} | {r['probe_accuracy_pixels']:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()

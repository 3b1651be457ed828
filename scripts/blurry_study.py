"""Why are VAE samples blurry? The lecture's three suspects, measured under one budget.

Trains four VAEs on the same grey digits (``binarize none``), same network (784-400-Z-400-784), seed,
optimiser and epochs, changing one thing each:

    (a) diag      diagonal Normal posterior, N(0, I) prior, Normal likelihood with fixed scale (squared error)
    (b) iaf       (a) with the context IAF posterior (iaf:2, Kingma et al. 2016): a tighter bound
    (c) vamp      (a) with the VampPrior (vamp:K): a richer prior
    (d) hetero    (a) with a learned-variance likelihood (normal-hetero: the decoder outputs sigma(z))

and reports for each: the test ELBO (all test images), L_S and the gap L_S - ELBO on a subset (S
importance samples), and three grids: decoder means E[x | z] for z ~ p(z), samples x ~ p(x | z) for
the same z, and reconstructions E[x | z = mean of q(z | x)] of the test images, each with one
sharpness number, the mean image-gradient magnitude relative to the test images'
(:mod:`pyro_vae.diagnostics.sharpness`; 1 = as sharp as the data; images clipped to [0, 1] as shown).
The lecture's suspects: (1) maximum likelihood itself, (2) the restricted families (posterior, prior,
likelihood), (3) the lower bound (the gap). Writes ``OUT/blurry_study.json`` and ``OUT/blurry_study.png``.

    nice -n 10 python scripts/blurry_study.py --threads 1 --out runs/blurry      # about 13 min on 2 busy cores
    python scripts/blurry_study.py --quick --out /tmp/blurry                      # digits, seconds
"""

import argparse
import json
import os
import statistics
import time
import warnings

import pyro
import torch

from pyro_vae.diagnostics.sharpness import relative_sharpness
from pyro_vae.diagnostics.tightness import dataset_statistics, summarise
from pyro_vae.experiment.build import build_data, build_elbo, build_model
from pyro_vae.experiment.config import TrainConfig
from pyro_vae.experiment.runs import atomic_write_json, json_safe, save_png
from pyro_vae.inference.kl_audit import SampledKLWarning
from pyro_vae.inference.train import fit
from pyro_vae.plots import image_panels_figure


def variants(base_likelihood, vamp):
    """The four configurations: name -> (label, prior, likelihood, posterior)."""
    return {
        "diag": ("(a) diag posterior", "normal", base_likelihood, "diag"),
        "iaf": ("(b) iaf:2 posterior", "normal", base_likelihood, "iaf:2"),
        "vamp": (f"(c) vamp:{vamp} prior", f"vamp:{vamp}", base_likelihood, "diag"),
        "hetero": ("(d) normal-hetero lik.", "normal", "normal-hetero", "diag"),
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--hidden", type=int, default=400)
    p.add_argument("--likelihood", default="normal:0.1", help="the likelihood of (a)-(c) (default normal:0.1)")
    p.add_argument("--vamp", type=int, default=100, help="pseudo-inputs of (c) (default 100)")
    p.add_argument("--elbo", default="meanfield", help="objective of all four (default meanfield)")
    p.add_argument("--num-samples", type=int, default=5000, help="S of L_S (default 5000)")
    p.add_argument("--bound-images", type=int, default=200, help="test images scored with S samples (default 200)")
    p.add_argument("--grid", type=int, default=1000, help="draws from p(z) per sharpness number (default 1000)")
    p.add_argument("--only", nargs="+", help="run only these variants (diag iaf vamp hetero)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="digits, 3 epochs, S = 100: a smoke test")
    p.add_argument("--out", default="runs/blurry_study")
    return p.parse_args(argv)


@torch.no_grad()
def grids(vae, n, seed):
    """``(means, samples)``: E[x | z] and x ~ p(x | z) for the same n draws z ~ p(z), ``(n, D)`` each."""
    pyro.set_rng_seed(seed)
    z = vae.prior().sample((n,))
    out = vae.decoder(z)
    return vae.likelihood.mean(out), vae.likelihood(out).sample()


def run_variant(name, spec, args):
    label, prior, likelihood, posterior = spec
    config = TrainConfig(dataset=args.dataset, binarize="none", prior=prior, likelihood=likelihood,
                         posterior=posterior, elbo=args.elbo, latent_dim=args.latent_dim, hidden=[args.hidden],
                         epochs=args.epochs, seed=args.seed).validate()
    pyro.clear_param_store()
    data = build_data(config)
    pyro.set_rng_seed(config.seed)
    vae = build_model(config, data)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampledKLWarning)  # iaf and vamp have no analytic KL: sampled, as said
        history = fit(vae, data, build_elbo(config, vae), epochs=config.epochs, batch_size=config.batch_size,
                      lr=config.lr, seed=config.seed, quiet=True)
    train_seconds = time.perf_counter() - t0
    vae.eval()
    x_bound = data.x_test[: args.bound_images]
    pyro.set_rng_seed(args.seed)
    bounds = summarise(dataset_statistics(vae.model, vae.guide, x_bound, args.num_samples), args.num_samples)
    means, samples = (g.clamp(0, 1) for g in grids(vae, args.grid, args.seed))
    reconstructions = torch.cat([vae.reconstruct(data.x_test[i : i + 500]) for i in range(0, len(data.x_test), 500)])
    reconstructions = reconstructions.clamp(0, 1)
    shape = data.image_shape
    row = {"variant": name, "label": label, "prior": prior, "likelihood": likelihood, "posterior": posterior,
           "test_elbo": history[-1]["test_elbo"], "test_reconstruction": history[-1]["test_reconstruction"],
           "test_kl": history[-1]["test_kl"], "bound_images": len(x_bound), "num_samples": args.num_samples,
           "subset_elbo": bounds["elbo"], f"subset_L_{args.num_samples}": bounds["log_likelihood"],
           "gap": bounds["gap"], "gap_stderr": bounds["stderr"]["gap"], "khat_median": bounds["khat"]["median"],
           "sharpness_means": relative_sharpness(means, data.x_test, shape),
           "sharpness_samples": relative_sharpness(samples, data.x_test, shape),
           "sharpness_reconstructions": relative_sharpness(reconstructions, data.x_test, shape),
           "reconstruction_squared_error": ((reconstructions - data.x_test) ** 2).sum(-1).mean().item(),
           "seconds_per_epoch": statistics.median(r["seconds"] for r in history), "train_seconds": train_seconds,
           "num_parameters": sum(p.numel() for p in vae.parameters())}
    return row, (means, samples, reconstructions), data


def main(argv=None):
    args = parse_args(argv)
    if args.quick:
        args.dataset, args.epochs, args.num_samples, args.bound_images, args.grid = "digits", 3, 100, 50, 200
        args.hidden, args.latent_dim, args.vamp = 64, 4, 10
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    specs = variants(args.likelihood, args.vamp)
    rows, data = [], None
    kinds = ("E[x|z], z ~ p(z)", "x ~ p(x|z), same z", "E[x|z = E_q[z|x]]")
    panels = {kind: {} for kind in kinds}
    for name in args.only or list(specs):
        row, images, data = run_variant(name, specs[name], args)
        rows.append(row)
        print(json.dumps(row), flush=True)
        numbers = (row["sharpness_means"], row["sharpness_samples"], row["sharpness_reconstructions"])
        for kind, grid, number in zip(kinds, images, numbers, strict=False):
            panels[kind][specs[name][0]] = (grid, f"sharpness {number:.2f}")
    panels[kinds[0]] = {"test images": (data.x_test, "sharpness 1 (reference)"), **panels[kinds[0]]}
    panels[kinds[2]] = {"test images": (data.x_test, "the inputs x"), **panels[kinds[2]]}
    title = (f"{args.dataset}, grey, {args.epochs} epochs each; sharpness = mean image-gradient magnitude "
             "relative to the test images'")
    save_png(image_panels_figure(panels, data.image_shape, nrow=6, title=title),
             os.path.join(args.out, "blurry_study.png"), dpi=110)
    atomic_write_json(os.path.join(args.out, "blurry_study.json"), json_safe({"settings": vars(args), "rows": rows}))
    s = args.num_samples
    print(f"\n{args.dataset} (binarize none), {args.epochs} epochs, {args.elbo}, seed {args.seed}; nats per test image")
    print(f"| variant | test ELBO | KL | ELBO ({rows[0]['bound_images']} imgs) | L_{s} | gap L_{s} - ELBO | "
          "sharpness E[x|z] | sharpness x ~ p(x|z) | sharpness recon. | recon. sq. error | s/epoch |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['label']} | {r['test_elbo']:.1f} | {r['test_kl']:.1f} | {r['subset_elbo']:.1f} | "
              f"{r[f'subset_L_{s}']:.1f} | {r['gap']:.2f} (+- {r['gap_stderr']:.2f}) | {r['sharpness_means']:.3f} | "
              f"{r['sharpness_samples']:.3f} | {r['sharpness_reconstructions']:.3f} | "
              f"{r['reconstruction_squared_error']:.2f} | {r['seconds_per_epoch']:.2f} |")
    print(f"wrote {os.path.join(args.out, 'blurry_study.json')} and blurry_study.png")


if __name__ == "__main__":
    main()

"""Which figures a trained run gets, assembled from the run, ``eval.json`` and ``kl_comparison.json``.

Each figure function in :mod:`pyro_vae.plots` takes plain data; this module reads the run (model,
data, history) and its result files and hands them the data. ``plot`` writes them all;
``evaluate`` writes the denoising figure with the same :func:`run_reconstructions_figure`.
"""

import os

import pyro
import torch

from ..diagnostics.representations import codes as compute_codes
from ..diagnostics.tightness import dataset_statistics
from ..plots import (
    bound_tightness_figure,
    empirical_quantiles,
    gradient_snr_figure,
    image_grid_figure,
    image_rows_figure,
    interpolate,
    interpolation_figure,
    khat_figure,
    latent_scatter_figure,
    learning_curves_figure,
    manifold_figure,
    marginal_quantiles,
    reconstructions_figure,
    training_curves_figure,
    variance_ratio_figure,
)

GRID_PROBS = (0.05, 0.95)  # the manifold's grid spans these quantiles (Kingma & Welling: a uniform grid on (0, 1))


def run_figures(loaded, grid_size=15, num_images=10, seed=0):
    """The figures made from the run alone: ``({file name: Figure}, {file name: why skipped})``."""
    model, data = loaded.model, loaded.data
    device = next(model.parameters()).device
    x_test = data.x_test.to(device)
    figures, skipped = {}, {}
    if loaded.history:
        figures["training_curves.png"] = training_curves_figure(
            loaded.history, title=f"{loaded.config.model} on {data.name}: training curves")

    if model.conditional_bound or model.classifies:  # a code per (image, label) or per visible part: no plain code
        figures.update(conditional_figures(loaded, num_images, seed))
        reason = f"--model {loaded.config.model}'s code depends on a label or the visible pixels"
        skipped.update({f: reason for f in ("interpolations.png", "latent_scatter.png", "latent_manifold.png")})
        return figures, skipped

    figures["reconstructions.png"] = run_reconstructions_figure(loaded, seed, num_images)
    point_mass = model.point_mass
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        pyro.set_rng_seed(seed)
        if point_mass:
            skipped["samples.png"] = "a point-mass code has no generative prior to sample"
        else:
            figures["samples.png"] = image_grid_figure(model.sample(5 * num_images), data.image_shape, nrow=num_images,
                                                       title="decoder means of z ~ p(z)")

    if model.discrete_latent:  # a mixture: its components are the picture; there is no continuous code to walk
        with torch.no_grad():
            log_prior = model.latent_log_prior()
            order = log_prior.argsort(descending=True)[: 10 * num_images]
            means = model.decode(torch.eye(len(log_prior), device=device)[order])  # one-hot codes: component means
        figures["components.png"] = image_grid_figure(means, data.image_shape, nrow=num_images,
                                                      title="component means, by decreasing weight")
        reason = "a discrete latent has no continuous code (see components.png)"
        skipped.update({f: reason for f in ("interpolations.png", "latent_scatter.png", "latent_manifold.png")})
        return figures, skipped

    codes = compute_codes(model, x_test)  # (N, Z) posterior means, or an autoencoder's codes
    pairs = min(num_images, 5, len(codes) // 2)  # paths between the codes of two test images each
    if pairs >= 1:
        path = interpolate(codes[:pairs], codes[pairs : 2 * pairs], steps=num_images)  # (P, T, Z)
        figures["interpolations.png"] = interpolation_figure(model.decode(path), data.image_shape)
    else:
        skipped["interpolations.png"] = (f"needs at least 2 test images (a pair of codes), the test split has "
                                         f"{len(codes)}")

    if len(codes) < 2:  # a scatter, its PCA and the codes' spread need two points
        why = f"needs at least 2 test images, the test split has {len(codes)}"
        skipped.update({"latent_scatter.png": why, "latent_manifold.png": why})
        return figures, skipped
    mixture = model.prior_components()
    if mixture is not None and mixture["loc"].shape[1] != codes.shape[1]:  # a prior over another latent
        mixture = None
    figures["latent_scatter.png"] = latent_scatter_figure(codes, data.y_test, mixture=mixture)

    if codes.shape[1] < 2:
        skipped["latent_manifold.png"] = "needs a latent dimension of at least 2"
    else:
        figures["latent_manifold.png"] = _manifold(model, codes, grid_size, data.image_shape)
    return figures, skipped


def conditional_figures(loaded, num_images=10, seed=0):
    """``class_samples.png`` (one row of samples per class) for the models that draw a chosen class;
    ``quadrants.png`` (inputs / truth / baseline / CVAE samples) for the quadrant CVAE; and the
    reconstructions of the first test images (with their own labels, or their visible part)."""
    model, data = loaded.model, loaded.data
    device = next(model.parameters()).device
    image_shape = data.image_shape
    figures = {}
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        pyro.set_rng_seed(seed)
        rows = data.x_test[:num_images].to(device)
        x = rows[:, : data.x_dim]  # the images, without label columns
        if model.samples_per_class:
            figures["class_samples.png"] = image_rows_figure(
                {f"y = {c}": model.sample(num_images, y=torch.full((num_images,), c, device=device))
                 for c in range(model.num_classes)}, image_shape, title="decoder means of z ~ p(z), one row per class")
        if model.predicts_hidden:
            figures["quadrants.png"] = quadrants_figure(model, x, image_shape, num_samples=3)
        figures["reconstructions.png"] = reconstructions_figure(x, model.reconstruct(rows), image_shape)
    return figures


def quadrants_figure(model, x, image_shape, num_samples=3):
    """Inputs (hidden pixels grey) / truth / the baseline's prediction / CVAE samples, one column per image."""
    inputs = x.clone()
    inputs[:, model.split.hidden_index] = 0.5
    panels = {"input": inputs, "truth": x, "baseline": model.baseline_prediction(x)}
    for i, sample in enumerate(model.predict(x, num_samples)):
        panels[f"CVAE {i + 1}"] = sample
    return image_rows_figure(panels, image_shape, title=f"{model.split.num_visible} visible quadrant(s): "
                             "baseline mean, CVAE samples")


def run_reconstructions_figure(loaded, seed, n=10):
    """Input / reconstruction rows of the first ``n`` test images; for a model with a corruption (a
    denoising AE), corrupted input / reconstruction / clean target, the noise drawn with ``seed``."""
    model = loaded.model
    x = loaded.data.x_test[:n].to(next(model.parameters()).device)
    corruption = model.corruption
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        pyro.set_rng_seed(seed)
        corrupted = corruption(x) if corruption is not None else None
        reconstruction = model.decode(model.encode(corrupted if corrupted is not None else x))
    title = f"denoising AE ({corruption.spec()}): input, output, target" if corruption is not None else None
    return reconstructions_figure(x, reconstruction, loaded.data.image_shape, corrupted=corrupted, title=title)


def _manifold(model, codes, grid_size, image_shape):
    """Z = 2 and a usable prior (``model.grid_prior()``): the grid through the prior's quantiles
    (Kingma & Welling, Fig. 4). Z > 2: a slice through the codes' mean along their two most varying
    dimensions. Autoencoders and ``vae2`` (no usable prior over the decoder's input): the codes'
    own quantiles."""
    probs = torch.linspace(*GRID_PROBS, grid_size)
    z_dim = codes.shape[1]
    dims = (0, 1) if z_dim == 2 else tuple(codes.var(0).topk(2).indices.sort().values.tolist())
    with torch.no_grad():
        prior = model.grid_prior()
    use_prior = prior is not None
    if use_prior:
        with torch.no_grad():
            values = marginal_quantiles(prior, probs, dims)
        source = "prior quantiles"
    else:
        values = empirical_quantiles(codes, probs, dims)
        source = "quantiles of the test codes"
    center = codes.mean(0) if z_dim > 2 or not use_prior else torch.zeros(z_dim)
    where = "" if z_dim == 2 else f"\nthe other {z_dim - 2} dimensions at the test codes' mean"
    title = (f"decoder means, z_{dims[0] + 1} x z_{dims[1] + 1} through {source} "
             f"{GRID_PROBS[0]:g}-{GRID_PROBS[1]:g}{where}")
    return manifold_figure(model.decode, values, center.to(codes.device), image_shape, dims=dims, title=title)


def eval_figures(loaded, report, khat_images=200):
    """Bound curve and per-image k-hat from ``eval.json``; k-hat is recomputed on the first
    ``khat_images`` images with the report's seed, S, batch and chunk size, which repeats the very
    draws ``pyro-vae evaluate`` made for those images."""
    if (report.get("verdict") or {}).get("level") == "not-a-bound":
        reason = "the guide is a point mass: its weights are not a bound (see eval.json's verdict)"
        return {}, {"bound_tightness.png": reason, "khat.png": reason}
    figures = {"bound_tightness.png": bound_tightness_figure(report)}
    khat = per_image_khat(loaded, report, khat_images)
    figures["khat.png"] = khat_figure(khat, report["num_samples"], title=f"Pareto k-hat per image (first "
                                      f"{len(khat)} {report.get('split', 'test')} images)")
    return figures, {}


def per_image_khat(loaded, report, max_images):
    """k-hat of the first ``max_images`` images evaluated in ``report`` (``eval.json``), ``(n,)``:
    the same seed, S, batch and chunk size give the same draws as ``pyro-vae evaluate``."""
    model = loaded.model
    n = min(max_images, report["num_images"])
    x = loaded.data.rows(report.get("split", "test"))[:n].to(next(model.parameters()).device)
    with torch.random.fork_rng(devices=[]):
        stats = dataset_statistics(*model.scored_programs(), x, report["num_samples"], seed=report.get("seed", 0),
                                   batch_size=report.get("batch_size", 100), chunk_size=report.get("chunk_size"))
    return stats["khat"]


def kl_figures(result, path="DIR"):
    """The figures of ``kl_comparison.json``: variance ratio, the gradient SNR against K when it has
    an ``snr_curve``, and learning curves when it has an outcome."""
    figures = {"kl_variance_ratio.png": variance_ratio_figure(result["variance"]["ratio"])}
    skipped = {}
    if "snr_curve" in result:
        figures["gradient_snr.png"] = gradient_snr_figure(result["snr_curve"])
    else:
        skipped["gradient_snr.png"] = f"kl_comparison.json has no snr_curve; rerun pyro-vae compare-kl {path}"
    if "outcome" in result:
        figures["kl_learning_curves.png"] = learning_curves_figure(result["outcome"]["curves"])
    else:
        skipped["kl_learning_curves.png"] = ("kl_comparison.json has no outcome; "
                                             f"rerun pyro-vae compare-kl {path} --outcome-epochs N")
    return figures, skipped


def make_figures(loaded, grid_size=15, num_images=10, khat_images=200, seed=0):
    """All applicable figures of a loaded run: ``({file name: Figure}, {file name: why not made})``.

    Figures from ``eval.json`` and ``kl_comparison.json`` are made only when the file was written at
    the checkpoint's epoch (else skipped, naming the command to rerun), and every figure says in its
    corner which epoch it shows.
    """
    figures, skipped = run_figures(loaded, grid_size, num_images, seed)
    for fig in figures.values():
        stamp(fig, f"checkpoint of epoch {loaded.epoch}")
    run = loaded.run
    sources = [("eval.json", lambda r: eval_figures(loaded, r, khat_images), "pyro-vae evaluate",
                ("bound_tightness.png", "khat.png")),
               ("kl_comparison.json", lambda r: kl_figures(r, run.path), "pyro-vae compare-kl",
                ("kl_variance_ratio.png", "gradient_snr.png"))]
    for name, make, command, names in sources:
        if name == "kl_comparison.json" and loaded.model.point_mass:
            skipped.update({f: "a point-mass code has no KL to compare" for f in names + ("kl_learning_curves.png",)})
        elif name == "kl_comparison.json" and loaded.model.discrete_latent:
            skipped.update({f: "a discrete latent's KL and gap are exact sums, nothing to estimate (see eval.json's "
                            "'exact' section)" for f in names + ("kl_learning_curves.png",)})
        elif not os.path.isfile(run.file(name)):
            skipped.update({f: f"needs {name}: run {command} {run.path}" for f in names})
        elif run.read_json(name).get("epoch") != loaded.epoch:
            made_at = run.read_json(name).get("epoch")
            skipped.update({f: f"{name} was made at epoch {made_at}, the checkpoint is at epoch {loaded.epoch}: "
                            f"rerun {command} {run.path}" for f in names + (("kl_learning_curves.png",)
                                                                            if "kl_" in name else ())})
        else:
            more, why = make(run.read_json(name))
            for fig in more.values():
                stamp(fig, f"{name} of epoch {loaded.epoch}")
            figures.update(more)
            skipped.update(why)
    return figures, skipped


def stamp(fig, text):
    """Write ``text`` (which epoch the figure shows) small in the figure's lower right corner."""
    fig.text(0.995, 0.005, text, ha="right", va="bottom", fontsize=6, color="0.45")
    return fig

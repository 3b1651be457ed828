"""``pyro-vae plot DIR``: every figure that applies to a run, as PNGs in the run directory.

From the run itself (checkpoint and ``history.csv``): training curves, reconstructions (corrupted /
reconstruction / clean for a denoising AE), prior samples (models with a density), interpolations,
the latent scatter and the 2-d manifold. From ``eval.json`` (``pyro-vae evaluate DIR``): the bound
curve and per-image k-hat. From ``kl_comparison.json`` (``pyro-vae compare-kl DIR``): the variance
ratio and, with an outcome, the learning curves of both objectives. Figures whose input is missing
are listed with the command that makes it; so are figures of an ``eval.json`` or
``kl_comparison.json`` made at another epoch than the checkpoint's. :mod:`.figures` decides which
figures apply.
"""

import os

from ..errors import UserError, check_int
from ..experiment.estimates import plot_need
from ..experiment.load import load_run
from ..experiment.runs import save_png
from .figures import make_figures
from .options import check_resources, say, set_threads

MAX_PIXELS = 2**23 - 1  # matplotlib's Agg canvas: fewer pixels than this in each direction


def run_command(args):
    """The ``plot`` subcommand (see :func:`pyro_vae.cli.parser.add_plot_parser`)."""
    for name, least in (("grid_size", 2), ("num_images", 2), ("khat_images", 1), ("dpi", 10)):
        check_int(name, getattr(args, name), least)
    if args.threads is not None:
        check_int("threads", args.threads)
    widest = max(6.0, 0.6 * args.num_images + 0.4) * args.dpi  # the manifold's 6 inches, a grid of N per row
    if widest > MAX_PIXELS:
        raise UserError(f"a figure of {args.num_images} images per row at {args.dpi} dpi would be {widest:,.0f} pixels "
                        f"wide, more than the {MAX_PIXELS:,} a PNG canvas takes; lower --num-images or --dpi")
    set_threads(args.threads)
    loaded = load_run(args.dir)
    report = loaded.run.read_json("eval.json") if os.path.isfile(loaded.run.file("eval.json")) else None
    khat = None if not isinstance(report, dict) or "num_samples" not in report else {
        "khat_images": args.khat_images, "num_images": report.get("num_images", 0),
        "num_samples": report["num_samples"], "batch_size": report.get("batch_size", 100),
        "chunk_size": report.get("chunk_size")}
    model = loaded.model
    check_resources(plot_need(model, loaded.data.data_dim, len(loaded.data.x_test), args.grid_size, args.num_images,
                              args.dpi, khat), next(model.parameters()).device, force=args.force)
    figures, skipped = make_figures(loaded, args.grid_size, args.num_images, args.khat_images, args.seed)
    for name, fig in figures.items():
        save_png(fig, loaded.run.file(name), dpi=args.dpi)
        say(f"wrote {loaded.run.file(name)}")  # a closed stdout (plot DIR | head) stops the lines, not the figures
    if not args.quiet:
        for name, why in skipped.items():
            say(f"skipped {name}: {why}")
    return 0

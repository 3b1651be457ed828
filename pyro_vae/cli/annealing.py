"""``pyro-vae evaluate``'s ``--ais-*`` and ``--bdmc`` options: AIS on the first images evaluated, the BDMC
sandwich on points simulated from the model, each with a progress bar, as ``eval.json`` entries."""

import math
import sys

import pyro
from tqdm.auto import tqdm

from ..diagnostics.ais import DEFAULT_PILOTS, DEFAULT_STEPS, ais, default_batch_size
from ..diagnostics.ais_report import ais_entry, ais_verdict
from ..diagnostics.bdmc import bdmc
from ..errors import UserError, check_int


def check_args(args):
    """Validate the flags before any work is done (a bad flag fails in a second, not after the bounds)."""
    if args.ais_steps is not None:
        check_int("ais_steps", args.ais_steps)
    for name in ("ais_chains", "ais_leapfrog", "ais_images"):
        check_int(name, getattr(args, name))
    check_int("bdmc", args.bdmc, least=0)


def check_model(model, args):
    """Refuse, before the bounds are computed, what AIS cannot do with this model."""
    if wanted(args) and args.ais_init == "guide" and model.point_mass:
        raise UserError("--ais-init guide needs a guide with a density, but the code is a point mass (Delta); "
                        "use --ais-init prior")


def wanted(args):
    return args.ais_steps is not None or args.bdmc > 0


def _bar(args, total, desc):
    return tqdm(total=total, unit="step", desc=desc, dynamic_ncols=True, disable=args.quiet or not sys.stderr.isatty())


def annealing_entries(model, x, stats, num_samples, args):
    """``{"ais": ..., "bdmc": ...}`` (those asked for) for ``eval.json``; ``stats`` are the bounds'
    per-image statistics of ``x``, whose L_S the AIS estimate is paired with."""
    steps = args.ais_steps or DEFAULT_STEPS
    settings = dict(num_steps=steps, num_chains=args.ais_chains, leapfrog_steps=args.ais_leapfrog,
                    schedule=args.ais_schedule, init=args.ais_init)
    forward_chunk = default_batch_size(args.ais_chains + DEFAULT_PILOTS)  # images per chunk, as ais() cuts them
    entries = {}
    if args.ais_steps is not None:
        xa = x[: args.ais_images]
        bar = _bar(args, math.ceil(len(xa) / forward_chunk) * steps, f"AIS ({len(xa)} images)")
        pyro.set_rng_seed(args.seed)
        result = ais(model.model, model.guide, xa, **settings, progress=bar.update)
        bar.close()
        entries["ais"] = ais_entry(result, stats["curve"][max(stats["curve"])][: len(xa)], num_samples)
    if args.bdmc:
        chunks = math.ceil(args.bdmc / forward_chunk) + math.ceil(args.bdmc / default_batch_size(args.ais_chains))
        bar = _bar(args, chunks * steps, f"BDMC ({args.bdmc} simulated)")
        pyro.set_rng_seed(args.seed)
        result = bdmc(model.model, model.guide, args.bdmc, x=x, **settings, progress=bar.update)
        bar.close()
        entries["bdmc"] = result.summary()
    return entries


def add_to_report(report, model, x, stats, num_samples, args):
    """Add the entries to ``report`` and the AIS/BDMC verdict to ``report["verdict"]["ais"]``."""
    report.update(annealing_entries(model, x, stats, num_samples, args))
    report["verdict"]["ais"] = ais_verdict(report)

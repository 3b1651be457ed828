"""``pyro-vae evaluate``'s ``--ais-*`` and ``--bdmc`` options as :func:`~pyro_vae.diagnostics.report.tightness_report`'s
keyword arguments, checked before any work is done."""

from ..diagnostics.report import check_annealing
from ..errors import UserError


def settings(args):
    """``tightness_report``'s AIS and BDMC keyword arguments from the parsed flags."""
    return dict(ais_steps=args.ais_steps, ais_chains=args.ais_chains, ais_leapfrog=args.ais_leapfrog,
                ais_schedule=args.ais_schedule, ais_init=args.ais_init, ais_images=args.ais_images,
                bdmc_points=args.bdmc)


def check_args(args):
    """Validate the flags before any work is done (a bad flag fails in a second, not after the bounds)."""
    check_annealing(**settings(args))


def check_model(model, args):
    """Refuse, before the bounds are computed, what AIS cannot do with this model."""
    if wanted(args) and args.ais_init == "guide" and model.point_mass:
        raise UserError("--ais-init guide needs a guide with a density, but the code is a point mass (Delta); "
                        "use --ais-init prior")


def wanted(args):
    return args.ais_steps is not None or args.bdmc > 0

"""The tightness report of any model/guide pair in one call: what ``pyro-vae evaluate`` computes.

:func:`tightness_report` scores ``x`` with S importance samples from the guide (the ELBO and its
terms, the bound curve L_K, the gap, PSIS k-hat, ESS, active units and the verdict: see
:mod:`pyro_vae.diagnostics.tightness`), optionally AIS on the first images and the BDMC sandwich
(:mod:`pyro_vae.diagnostics.ais`, :mod:`pyro_vae.diagnostics.bdmc`), and returns the dict that
``eval.json`` holds for those quantities; :func:`format_table` prints it. The command line adds
what needs a trained run rather than a model/guide pair (the amortization gap, exact sums of a
discrete latent, bits per dimension, the code report) and the run's metadata.
"""

import math

import pyro

from ..errors import UserError, check_int
from ..inference.distributed import SINGLE
from .ais import DEFAULT_CHAINS, DEFAULT_LEAPFROG, DEFAULT_PILOTS, DEFAULT_STEPS, ais, default_batch_size
from .ais_report import ais_entry, ais_verdict
from .bdmc import bdmc
from .tightness import DEFAULT_BATCH_SIZE, dataset_statistics, format_table, summarise

__all__ = ["AIS_INITS", "AIS_SCHEDULES", "annealing_entries", "format_table", "tightness_report"]

AIS_SCHEDULES = ("sigmoid", "linear")  # the beta schedules AIS offers by name
AIS_INITS = ("guide", "prior")  # AIS's starting distribution q0


def _no_bar(total, unit, desc):
    return None


def tightness_report(model, guide, x, num_samples=5000, *, batch_size=DEFAULT_BATCH_SIZE, chunk_size=None, seed=0,
                     psis=True, ais_steps=None, ais_chains=DEFAULT_CHAINS, ais_leapfrog=DEFAULT_LEAPFROG,
                     ais_schedule="sigmoid", ais_init="guide", ais_images=100, bdmc_points=0, progress=None,
                     print_table=True, title="", max_plate_nesting=1, distributed=SINGLE):
    """How tight is the ELBO of ``guide`` for ``model`` on ``x``, and can L_S be read as log p(x)?

    :param model: a Pyro program ``model(x)`` with its latent sites in a ``"data"`` plate.
    :param guide: ``guide(x)`` drawing the same latent sites.
    :param x: ``(N, ...)`` data rows.
    :param num_samples: S importance samples per row (the bound curve's largest K).
    :param batch_size: rows scored at a time.
    :param chunk_size: draws per chunk (None: about 8,192 network rows at a time).
    :param seed: seeds each batch's draws by the batch alone, and AIS and BDMC; None draws from the
        current random stream.
    :param psis: fit the Pareto tail of each row's weights (k-hat, PSIS estimate).
    :param ais_steps: T annealing steps of AIS on the first ``ais_images`` rows (None: no AIS).
    :param ais_chains: C chains per row.
    :param ais_leapfrog: L leapfrog steps per HMC transition.
    :param ais_schedule: ``"sigmoid"`` or ``"linear"`` betas.
    :param ais_init: q0 of AIS and BDMC: ``"guide"`` or ``"prior"``.
    :param ais_images: rows AIS scores (the first ones).
    :param bdmc_points: P points simulated from the model for the BDMC sandwich (0: none), with
        ``ais_steps`` steps (or AIS's default).
    :param progress: optional ``progress(total, unit, desc)`` returning a bar with ``update(n)`` and
        ``close()`` (tqdm's signature), called once per phase.
    :param print_table: print :func:`format_table` of the report (with ``title``), as ``pyro-vae evaluate``
        prints it; False keeps it quiet.
    :param max_plate_nesting: plates in the model.
    :param distributed: a torchrun job whose processes each score a share of the batches; the
        gathered report is returned on rank 0 and None elsewhere.
    :returns: the report dict (``elbo``, ``reconstruction``, ``kl``, ``bound_curve``, ``gap``,
        ``stderr``, ``khat``, ``ess_median``, ``active_units``, ``verdict``, ... and ``ais``,
        ``bdmc`` when asked), nats per data point, as in ``eval.json``.

    Example::

        >>> import pyro_vae as pv, torch
        >>> lik, post = pv.Bernoulli(), pv.DiagonalNormal()
        >>> vae = pv.VAE(pv.MLP(64, [32], post.num_params(2)), pv.MLP(2, [32], lik.num_params(64)),
        ...              prior=pv.StandardNormal(2), likelihood=lik, posterior=post)
        >>> x = torch.bernoulli(torch.full((20, 64), 0.3))
        >>> report = pv.tightness_report(vae.model, vae.guide, x, num_samples=100, ais_steps=20, ais_images=4,
        ...                              print_table=False)
        >>> list(report["bound_curve"]), report["ais"]["num_images"], report["gap"] >= 0
        (['1', '5', '50', '100'], 4, True)
    """
    num_samples = check_int("num_samples", num_samples)
    check_annealing(ais_steps, ais_chains, ais_leapfrog, ais_schedule, ais_init, ais_images, bdmc_points)
    progress = progress or _no_bar
    bar = progress(x.shape[0], "rows", "bounds")
    stats = dataset_statistics(model, guide, x, num_samples, batch_size=batch_size, chunk_size=chunk_size,
                               progress=None if bar is None else bar.update, max_plate_nesting=max_plate_nesting,
                               seed=seed, psis=psis, distributed=distributed)
    if bar is not None:
        bar.close()
    if not distributed.is_main:
        return None
    report = summarise(stats, num_samples)
    if ais_steps is not None or bdmc_points:
        report.update(annealing_entries(
            model, guide, x, stats["curve"][max(stats["curve"])], num_samples, ais_steps=ais_steps,
            ais_chains=ais_chains, ais_leapfrog=ais_leapfrog, ais_schedule=ais_schedule, ais_init=ais_init,
            ais_images=ais_images, bdmc_points=bdmc_points, seed=seed, progress=progress,
            max_plate_nesting=max_plate_nesting))
        report["verdict"]["ais"] = ais_verdict(report)
    if print_table:
        print(format_table(report, title))
    return report


def check_annealing(ais_steps, ais_chains, ais_leapfrog, ais_schedule, ais_init, ais_images, bdmc_points):
    """Refuse bad AIS and BDMC settings before any work is done."""
    if ais_steps is not None:
        check_int("ais_steps", ais_steps)
    for name, value in (("ais_chains", ais_chains), ("ais_leapfrog", ais_leapfrog), ("ais_images", ais_images)):
        check_int(name, value)
    check_int("bdmc_points", bdmc_points, least=0)
    if ais_schedule not in AIS_SCHEDULES:
        raise UserError(f"ais_schedule must be one of {', '.join(AIS_SCHEDULES)}, got {ais_schedule!r}",
                        param="ais_schedule")
    if ais_init not in AIS_INITS:
        raise UserError(f"ais_init must be one of {', '.join(AIS_INITS)}, got {ais_init!r}", param="ais_init")


def annealing_entries(model, guide, x, iwae_per_point, num_samples, *, ais_steps=None, ais_chains=DEFAULT_CHAINS,
                      ais_leapfrog=DEFAULT_LEAPFROG, ais_schedule="sigmoid", ais_init="guide", ais_images=100,
                      bdmc_points=0, seed=0, progress=None, max_plate_nesting=1):
    """``{"ais": ..., "bdmc": ...}`` (those asked for) for the report.

    :param iwae_per_point: ``(N,)`` L_S of the rows of ``x``, which the AIS estimate of the first
        ``ais_images`` rows is paired with.
    :param num_samples: S of those L_S.

    The other parameters are :func:`tightness_report`'s.
    """
    progress = progress or _no_bar
    steps = ais_steps or DEFAULT_STEPS
    settings = dict(num_steps=steps, num_chains=ais_chains, leapfrog_steps=ais_leapfrog, schedule=ais_schedule,
                    init=ais_init, max_plate_nesting=max_plate_nesting)
    forward_chunk = default_batch_size(ais_chains + DEFAULT_PILOTS)  # rows per chunk, as ais() cuts them
    entries = {}
    if ais_steps is not None:
        xa = x[:ais_images]
        bar = progress(math.ceil(len(xa) / forward_chunk) * steps, "step", f"AIS ({len(xa)} images)")
        if seed is not None:
            pyro.set_rng_seed(seed)
        result = ais(model, guide, xa, **settings, progress=None if bar is None else bar.update)
        if bar is not None:
            bar.close()
        entries["ais"] = ais_entry(result, iwae_per_point[: len(xa)], num_samples)
    if bdmc_points:
        chunks = math.ceil(bdmc_points / forward_chunk) + math.ceil(bdmc_points / default_batch_size(ais_chains))
        bar = progress(chunks * steps, "step", f"BDMC ({bdmc_points} simulated)")
        if seed is not None:
            pyro.set_rng_seed(seed)
        result = bdmc(model, guide, bdmc_points, x=x, **settings, progress=None if bar is None else bar.update)
        if bar is not None:
            bar.close()
        entries["bdmc"] = result.summary()
    return entries

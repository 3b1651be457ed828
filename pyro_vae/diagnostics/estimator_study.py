"""Gradient estimators compared on a trained model: variance and signal-to-noise ratio per parameter
group for any list of objectives (``trace``, ``meanfield``, ``stl``, ``iwae:K``, ``iwae-dreg:K``),
and the SNR of ``iwae:K`` against ``iwae-dreg:K`` as K grows.

Both build on :func:`~pyro_vae.diagnostics.kl_study.gradient_variance`: R estimates of the gradient
on one fixed batch, repeat r seeded with ``seed + r`` for every objective, so objectives that draw
alike (``trace``, ``meanfield`` and ``stl``; ``iwae:K`` and ``iwae-dreg:K``) see the same z. The SNR of
a coordinate is ``|E g| / sd g`` over the R estimates; a group's ``snr`` is its mean over coordinates
(``snr_median`` the median). With R estimates an SNR cannot be told from zero below about
``sqrt(2 / pi) / sqrt(R)`` (the mean |E g| / sd of a zero-mean coordinate): :func:`snr_floor`.

References: Rainforth, Kosiorek, Le, Maddison, Igl, Wood & Teh (2018), "Tighter Variational Bounds
are Not Necessarily Better" (the SNR of IWAE's encoder gradient falls like 1/sqrt(K)); Tucker,
Lawson, Gu & Maddison (2019), "Doubly Reparameterized Gradient Estimators for Monte Carlo
Objectives" (DReG's grows); Roeder, Wu & Duvenaud (2017), "Sticking the Landing".
"""

import math

from ..errors import UserError, check_int
from ..inference.objectives import check_model, is_jit, make_elbo
from .kl_study import gradient_variance, parameter_groups


def snr_floor(repeats):
    """Mean ``|mean| / sd`` of a coordinate whose true mean is zero, from ``repeats`` estimates:
    ``sqrt(2 / pi) / sqrt(R)`` (the mean of |t| / sqrt(R), large R). SNRs near it are noise."""
    return math.sqrt(2 / math.pi) / math.sqrt(check_int("repeats", repeats, least=2))


def check_estimators(estimators):
    """Build each spec once (a bad one is a one-line :class:`UserError`); JIT objectives are refused."""
    for spec in estimators:
        if is_jit(make_elbo(spec)):
            raise UserError(f"estimators takes objectives without JIT (compiled ones see one draw shape); "
                            f"use {spec[4:]!r} instead of {spec!r}", param="estimators")
    return list(estimators)


def estimator_study(vae, x, estimators=("trace", "meanfield", "stl", "iwae:5", "iwae-dreg:5"), repeats=100, seed=0,
                    groups=None, known=None):
    """:func:`gradient_variance` of each objective spec on the fixed batch ``x``, paired by seed.

    :param estimators: specs for :func:`~pyro_vae.inference.objectives.make_elbo` (one particle each;
        ``iwae:K`` and ``iwae-dreg:K`` draw their own K); JIT objectives are refused.
    :param dict known: ``{spec: result}`` already measured with the same batch, repeats and seed
        (reused, not recomputed).
    :returns: ``{"results": {spec: result}, "skipped": {spec: reason}}``; an objective that cannot
        train ``vae`` (e.g. ``iwae:K`` with a point-mass code) is skipped with the reason.

    Example::

        >>> import torch, pyro_vae as pv
        >>> vae = pv.VAE(pv.MLP(6, [8], 4), pv.MLP(2, [8], 6), z_dim=2)
        >>> x = torch.bernoulli(torch.full((4, 6), 0.5))
        >>> study = estimator_study(vae, x, ["trace", "stl"], repeats=5)
        >>> sorted(study["results"]["stl"]["groups"]), study["skipped"]
        (['decoder', 'encoder'], {})
    """
    groups = parameter_groups(vae) if groups is None else groups
    results, skipped = {}, {}
    for spec in check_estimators(estimators):
        if known and spec in known:
            results[spec] = known[spec]
            continue
        elbo = make_elbo(spec)
        try:
            check_model(elbo, vae)
        except UserError as e:
            skipped[spec] = str(e)
            continue
        results[spec] = gradient_variance(vae.model, vae.guide, x, elbo, groups, repeats=repeats, seed=seed)
    return {"results": results, "skipped": skipped}


def snr_curve(vae, x, ks=(1, 5, 50, 500), objectives=("iwae", "iwae-dreg"), repeats=100, seed=0, groups=None):
    """The gradient SNR of each group against K for ``iwae:K`` and ``iwae-dreg:K`` on the batch ``x``
    (Rainforth et al. 2018, Fig. 2's shape): :func:`gradient_variance` at every K, paired by seed.

    :returns: ``{"ks", "objectives", "snr": {objective: {group: [SNR at each K]}}, "snr_median"
        (same shape), "total_variance" (same shape), "snr_floor", "results": {"iwae:5": result, ...}}``.
    """
    for k in ks:
        check_int("snr_k", k)
    groups = parameter_groups(vae) if groups is None else groups
    study = estimator_study(vae, x, [f"{name}:{k}" for name in objectives for k in ks], repeats=repeats, seed=seed,
                            groups=groups)
    if study["skipped"]:
        spec, reason = next(iter(study["skipped"].items()))
        raise UserError(f"the SNR curve needs {spec}, which cannot run here: {reason}", param="snr_k")
    results = study["results"]
    curve = {"ks": [int(k) for k in ks], "objectives": list(objectives), "snr_floor": snr_floor(repeats),
             "results": results}
    for stat in ("snr", "snr_median", "total_variance"):
        curve[stat] = {name: {g: [results[f"{name}:{k}"]["groups"][g][stat] for k in ks] for g in groups}
                       for name in objectives}
    return curve


"""The exact gap of a model with a discrete latent: log p(x), ELBO and KL(q || p(z | x)), no sampling.

When z takes K values (``model.discrete_latent``, e.g. a mixture), everything the bound report
estimates from draws is a finite sum:

    log p(x)      = logsumexp_k log p(x, z = k)
    ELBO(q)       = sum_k q_k [log p(x, z = k) - log q_k]
    gap           = log p(x) - ELBO(q)  =  KL(q(z | x) || p(z | x))      (point by point)

Here the KL is computed independently, by torch's ``kl_divergence`` of two Categoricals (q and the
posterior p(z | x) = exp(log p(x, z) - log p(x))), so the report's ``max_abs_identity_error`` checks
the identity on the data. :func:`exact_report` puts these beside the sampled report of
:mod:`~pyro_vae.diagnostics.tightness`: the error of the one-draw-per-sample ELBO and of each L_K
against the exact log p(x) (L_K -> log p(x) as K grows, Burda et al. 2016).
"""

import pyro.distributions as dist
import torch
from torch.distributions import kl_divergence

from ..inference.enumeration import enumerated_elbo
from .tightness import mean_and_stderr


@torch.no_grad()
def exact_statistics(model, x, batch_size=100):
    """Per data point, float64 ``(N,)`` tensors: ``log_likelihood`` (exact log p(x)), ``elbo`` (exact
    ELBO of the model's guide q), ``gap`` (their difference) and ``kl_posterior`` (KL(q || p(z | x))
    from torch's Categorical KL).

    :param model: a :class:`~pyro_vae.models.base.LatentModel` with ``discrete_latent``.

    Example::

        >>> import pyro_vae as pv
        >>> mix = pv.MixtureModel(3, pv.Bernoulli(), 16, encoder=pv.MLP(16, [8], 3))
        >>> s = exact_statistics(mix, torch.bernoulli(torch.full((5, 16), 0.4)))
        >>> bool(torch.allclose(s["gap"], s["kl_posterior"], atol=1e-5)), bool((s["gap"] >= -1e-6).all())
        (True, True)
    """
    parts = {"log_likelihood": [], "elbo": [], "gap": [], "kl_posterior": []}
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size]
        log_joint = model.log_joint_table(xb).double()  # (B, K)
        log_q = model.guide_table(xb).double()  # (B, K)
        log_px = torch.logsumexp(log_joint, -1)  # (B,)
        elbo = enumerated_elbo(log_joint, log_q)
        posterior = dist.Categorical(logits=log_joint - log_px[:, None])
        parts["log_likelihood"].append(log_px)
        parts["elbo"].append(elbo)
        parts["gap"].append(log_px - elbo)
        parts["kl_posterior"].append(kl_divergence(dist.Categorical(logits=log_q), posterior))
    return {k: torch.cat(v) for k, v in parts.items()}


def exact_report(stats, sampled=None):
    """The ``"exact"`` section of ``eval.json`` (nats per data point): means and standard errors of
    :func:`exact_statistics`, the largest |gap - KL| over points, and, given the sampled report
    ``sampled`` (:func:`~pyro_vae.diagnostics.tightness.summarise` over the same points), the error
    of its ELBO and of each L_K against the exact values."""
    report, stderr = {}, {}
    for key in ("log_likelihood", "elbo", "gap", "kl_posterior"):
        report[key], stderr[key] = mean_and_stderr(stats[key])
    report["max_gap"] = stats["gap"].max().item()
    report["max_abs_identity_error"] = (stats["gap"] - stats["kl_posterior"]).abs().max().item()
    report["stderr"] = stderr
    if sampled is not None:
        report["sampled_elbo_minus_exact"] = sampled["elbo"] - report["elbo"]
        report["bound_curve_minus_log_likelihood"] = {k: v - report["log_likelihood"]
                                                      for k, v in sampled["bound_curve"].items()}
    return report


EXACT_GAP_TOL = 1e-4  # nats: a largest exact gap below this means q(z | x) is the posterior up to rounding


def exact_verdict(report):
    """The verdict of a discrete latent, read from the exact numbers rather than from k-hat (its
    weights take at most K values, so a Pareto tail fit says nothing): ``exact`` when every point's
    gap is below :data:`EXACT_GAP_TOL` (q is the posterior), else ``exact-gap``."""
    if report["max_gap"] < EXACT_GAP_TOL:
        return {"level": "exact", "message": (
            f"the latent is discrete and q(z|x) is its exact posterior (largest exact gap {report['max_gap']:.1e} "
            "nats): ELBO = L_K = log p(x), computed exactly by summing over z; k-hat only sees rounding.")}
    curve = report.get("bound_curve_minus_log_likelihood") or {}
    last = f"; the sampled L_{max(curve, key=int)} is {curve[max(curve, key=int)]:+.3f} nats from it" if curve else ""
    return {"level": "exact-gap", "message": (
        f"the latent is discrete: log p(x) and the gap KL(q || p(z|x)) = {report['gap']:.3f} nats are exact sums over "
        f"z{last}. k-hat is not meaningful here (the weights take at most K values).")}


def format_exact(report):
    """Lines for the evaluate table."""
    se = report["stderr"]
    lines = [f"{'exact log p(x) (sum over z)':32s}{report['log_likelihood']:12.3f}{se['log_likelihood']:9.3f}",
             f"{'exact ELBO':32s}{report['elbo']:12.3f}{se['elbo']:9.3f}",
             f"{'exact gap = KL(q || p(z|x))':32s}{report['gap']:12.3f}{se['gap']:9.3f}",
             f"{'  max |gap - KL| over points':32s}{report['max_abs_identity_error']:12.2e}"]
    for k, v in report.get("bound_curve_minus_log_likelihood", {}).items():
        lines.append(f"{'  L_' + k + ' - exact log p(x)':32s}{v:12.3f}")
    return "\n".join(lines)

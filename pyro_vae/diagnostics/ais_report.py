"""AIS and the BDMC sandwich in the tightness report: the ``ais`` and ``bdmc`` entries of ``eval.json``,
their verdict next to L_S, and their rows in the printed table.

L_S and AIS are both stochastic lower bounds on log p(x), so on the same images the higher one is
the better bound: when AIS is higher by more than two standard errors of the paired difference,
L_S understates log p(x) by at least that much; when they agree within their errors, either both
are close to log p(x) or both are stuck below it, which the BDMC gap (on simulated data) tells
apart; when AIS is lower, it has not converged with its settings and L_S is the better number.
Agreement is claimed only when AIS's chains moved: with no HMC transition (one step) or a mean
acceptance below :data:`MIN_ACCEPTANCE`, AIS is little more than importance sampling from its
starting distribution with a few draws, and equal numbers say nothing (``inconclusive``).
"""

import math

AGREE_SE = 2.0  # the paired difference counts as zero within this many standard errors
MIN_ACCEPTANCE = 0.1  # below this mean HMC acceptance (the target is 0.65) the chains have not moved


def ais_entry(result, iwae_per_point, num_samples):
    """``eval.json``'s ``ais``: the AIS summary and its paired comparison with L_S on the same images.

    :param result: an :class:`~pyro_vae.diagnostics.ais.AISResult` of the first B images.
    :param iwae_per_point: ``(B,)`` L_S of the same images.
    :param int num_samples: S.
    """
    entry = result.summary()
    diff = (result.log_likelihood - iwae_per_point.double()).double()  # (B,)
    n = diff.numel()
    entry.update(iwae_num_samples=num_samples, iwae_log_likelihood=iwae_per_point.double().mean().item(),
                 understatement=diff.mean().item(),
                 understatement_stderr=diff.std().item() / math.sqrt(n) if n > 1 else math.nan)
    return entry


def ais_verdict(report):
    """What AIS (and BDMC, when run) say about L_S: ``{"level": ..., "message": ...}`` with level
    ``understated`` (AIS is higher: L_S is loose by at least the difference), ``agree``,
    ``inconclusive`` (they agree, but AIS's chains did not move), ``ais-not-converged`` (AIS is
    lower), or ``bdmc-only`` when only the sandwich ran."""
    parts, level = [], "bdmc-only"
    ais = report.get("ais")
    if ais:
        d, se, s = ais["understatement"], ais["understatement_stderr"], ais["iwae_num_samples"]
        what = f"AIS ({ais['num_steps']} steps, {ais['num_chains']} chains, {ais['num_images']} images)"
        if not se == se:  # one image: no standard error
            se = 0.0
        if d > AGREE_SE * se and d > 0:
            level = "understated"
            parts.append(f"{what} is {d:.2f} +- {se:.2f} nats above L_{s}: L_{s} understates log p(x) by at "
                         "least that much (AIS is itself a lower bound).")
        elif d >= -AGREE_SE * se and (ais["num_steps"] < 2 or ais["acceptance_mean"] < MIN_ACCEPTANCE):
            level = "inconclusive"
            moves = "made no HMC move (one step)" if ais["num_steps"] < 2 else \
                f"accepted {ais['acceptance_mean']:.1%} of its HMC moves (target 65%)"
            parts.append(f"{what} {moves}: its chains did not move, so its {d:+.2f} +- {se:.2f} nats against L_{s} "
                         "says nothing about log p(x); raise the steps (and check the leapfrog steps).")
        elif d >= -AGREE_SE * se:
            level = "agree"
            parts.append(f"{what} and L_{s} agree within their errors ({d:+.2f} +- {se:.2f} nats).")
        else:
            level = "ais-not-converged"
            parts.append(f"{what} is {-d:.2f} +- {se:.2f} nats below L_{s}: AIS has not converged with these "
                         f"settings (raise the steps); L_{s} is the better lower bound.")
    bdmc = report.get("bdmc")
    if bdmc:
        parts.append(f"BDMC on {bdmc['num_points']} simulated points ({bdmc['num_steps']} steps): gap upper - lower "
                     f"{bdmc['gap_mean']:.2f} nats (max {bdmc['gap_max']:.2f}), so AIS with these settings is within "
                     f"about {bdmc['gap_mean']:.2f} nats of log p(x) on data like the model's own samples.")
    return {"level": level, "message": " ".join(parts)}


def table_rows(report):
    """``(name, value, stderr)`` rows of AIS and BDMC for the printed table (none when not run)."""
    rows = []
    ais = report.get("ais")
    if ais:
        rows += [(f"AIS, T={ais['num_steps']} ({ais['num_images']} imgs)", ais["log_likelihood"], ais["stderr"]),
                 (f"  AIS - L_{ais['iwae_num_samples']} (same imgs)", ais["understatement"],
                  ais["understatement_stderr"])]
    bdmc = report.get("bdmc")
    if bdmc:
        rows += [(f"BDMC lower ({bdmc['num_points']} simulated)", bdmc["lower"], bdmc["lower_stderr"]),
                 ("BDMC upper", bdmc["upper"], bdmc["upper_stderr"]),
                 ("BDMC gap upper - lower", bdmc["gap_mean"], bdmc["gap_stderr"])]
    return rows


def table_lines(report):
    """Lines after the table's verdict: AIS acceptance and the AIS/BDMC verdict (none when not run)."""
    lines = []
    ais = report.get("ais")
    if ais:
        lines.append(f"{'AIS acceptance / chain spread':32s}{ais['acceptance_mean']:12.3f}"
                     f"{ais['chain_spread_median']:9.3f}")
    verdict = (report.get("verdict") or {}).get("ais")
    if verdict:
        lines.append(f"AIS verdict: {verdict['level']}: {verdict['message']}")
    return lines

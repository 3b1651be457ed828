"""Figures: plain data in, a :class:`matplotlib.figure.Figure` out.

No pyplot and no global state: every function builds its own ``Figure`` (rendered by the Agg
canvas when saved), so figures can be made in threads, tests and scripts without a display.
Save with ``fig.savefig(path)``.
"""

import math

from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from .images import image_grid, show_grid


def variance_ratio_figure(ratios, title="Analytic vs sampled KL: variance ratio (meanfield / trace)"):
    """Grouped bars of a variance ratio per parameter group, one bar per particle count.

    :param dict ratios: ``{num_particles: {group: ratio}}`` (the ``ratio`` entry of
        ``kl_comparison.json``'s ``variance``); groups such as ``elbo``, ``encoder``, ``decoder``.
        A ratio below 1 (under the dashed line) means less variance with the analytic KL.
    """
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.add_subplot()
    particles = list(ratios)
    groups = list(dict.fromkeys(g for p in particles for g in ratios[p]))
    groups.sort(key=lambda g: g != "elbo")  # the ELBO value first, then the parameter groups
    width = 0.8 / max(len(particles), 1)
    finite = []
    for i, p in enumerate(particles):
        xs = [j + (i - (len(particles) - 1) / 2) * width for j in range(len(groups))]
        heights = [ratios[p].get(g) for g in groups]
        heights = [float("nan") if h is None or not h > 0 else h for h in heights]
        bars = ax.bar(xs, [h - 1 for h in heights], bottom=1, width=width,  # bars grow from 1 (no change)
                      label=f"{p} particle{'s' if str(p) != '1' else ''}")
        ax.bar_label(bars, labels=[f"{h:.2f}" for h in heights], fontsize="x-small")
        finite += [h for h in heights if h == h]
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(groups)), [("ELBO value" if g == "elbo" else f"{g} grad") for g in groups])
    ax.set_yscale("log")
    span = max([abs(math.log(h)) for h in finite] + [math.log(1.25)]) * 1.3  # symmetric about 1
    ax.set_ylim(math.exp(-span), math.exp(span))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.set_ylabel("variance ratio (meanfield / trace)")
    ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="small")
    return fig


def gradient_snr_figure(curve, title="Gradient signal-to-noise ratio against K"):
    """SNR of each parameter group's gradient against K, log-log, one line per objective
    (Rainforth et al. 2018, Fig. 2's shape): ``iwae:K``'s encoder SNR falls like K^-1/2, DReG's rises.

    :param dict curve: the ``snr_curve`` entry of ``kl_comparison.json``: ``ks``, ``snr``
        (``{objective: {group: [SNR per K]}}``) and optionally ``snr_floor`` (the SNR a zero-mean
        coordinate shows with R draws, drawn as a grey band).
    """
    ks = [int(k) for k in curve["ks"]]
    names = list(curve["snr"])
    groups = list(curve["snr"][names[0]]) if names else []
    groups.sort(key=lambda g: (g != "encoder", g != "decoder"))  # encoder, decoder, then the rest
    fig = Figure(figsize=(3.6 * max(len(groups), 1) + 0.4, 3.6), layout="constrained")
    axes = fig.subplots(1, max(len(groups), 1), squeeze=False)[0]
    # wide under narrow: the decoder curves coincide (paired draws, the same decoder gradient)
    styles = {"iwae": ("tab:blue", "o", 3.5), "iwae-dreg": ("tab:orange", "s", 1.5)}
    for ax, group in zip(axes, groups, strict=False):
        for i, name in enumerate(names):
            color, marker, width = styles.get(name, (f"C{i + 2}", "^", 1.5))
            values = [v if v is not None and v > 0 else float("nan") for v in curve["snr"][name][group]]
            ax.plot(ks, values, marker=marker, color=color, linewidth=width, label=f"{name}:K")
        first = next((v for v in curve["snr"][names[0]][group] if v), None) if names else None
        if first and len(ks) > 1:  # reference slopes through the first point
            for power, style in ((-0.5, ":"), (0.5, "--")):
                ax.plot(ks, [first * (k / ks[0]) ** power for k in ks], color="grey", linestyle=style, linewidth=0.8,
                        label=f"K^{power:+g}")
        if curve.get("snr_floor"):
            ax.axhspan(1e-12, curve["snr_floor"], color="grey", alpha=0.15, label="noise floor (R draws)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("K (importance samples)")
        ax.set_title(f"{group} gradient", fontsize="medium")
        ax.grid(alpha=0.3, which="both")
        finite = [v for n in names for v in curve["snr"][n][group] if v and v > 0]
        if finite:
            ax.set_ylim(min(finite + [curve.get("snr_floor") or min(finite)]) / 2, max(finite) * 2)
    axes[0].set_ylabel("SNR: mean over coordinates of |E g| / sd g")
    axes[0].legend(fontsize="x-small")
    fig.suptitle(title, fontsize="medium")
    return fig


def learning_curves_figure(curves, ylabel="test ELBO (nats per data point)", title="Learning curves"):
    """Per-epoch curves of several objectives over seeds: thin line per seed, thick line the mean.

    :param dict curves: ``{objective: {seed: [value per epoch]}}`` (``outcome.curves`` of
        ``kl_comparison.json``).
    """
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.add_subplot()
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    for i, (name, by_seed) in enumerate(curves.items()):
        color = colors[i % len(colors)]
        runs = [list(v) for v in by_seed.values() if len(v)]
        for values in runs:
            ax.plot(range(1, len(values) + 1), values, color=color, alpha=0.35, linewidth=0.8)
        length = min((len(v) for v in runs), default=0)
        if length:
            mean = [sum(v[e] for v in runs) / len(runs) for e in range(length)]
            ax.plot(range(1, length + 1), mean, color=color, linewidth=2,
                    label=f"{name} (mean of {len(runs)} seed{'s' if len(runs) != 1 else ''})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize="medium")
    if curves:
        ax.legend(fontsize="small")
    return fig


def image_rows_figure(rows, image_shape, title=None):
    """One row of images per entry of ``rows`` (``{label: (n, D) tensor in [0, 1]}``), via
    torchvision's ``make_grid``; each row labelled on the left."""
    fig = Figure(figsize=(1.0 + 0.7 * max(len(v) for v in rows.values()), 0.8 + 0.75 * len(rows)),
                 layout="constrained")
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, (label, images) in zip(axes, rows.items(), strict=False):
        show_grid(ax, image_grid(images, image_shape, nrow=len(images)))  # (H', W') grey, (H', W', 3) colour
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title)
    return fig


def training_curves_figure(history, title="Training curves"):
    """Per-epoch ELBO (train and test) and the test ELBO's two terms, three panels.

    :param list history: per-epoch dicts as in ``history.csv`` (``epoch``, ``train_loss``,
        ``test_elbo``, ``test_reconstruction``, ``test_kl``; nats per data point). ``train_loss`` is
        the minimised objective (the weighted negative ELBO with ``beta``/``kl_warmup``), so it is
        drawn negated, as "train -loss", next to the unweighted test ELBO.
    """
    epochs = [int(r["epoch"]) for r in history]
    fig = Figure(figsize=(10.5, 3.2), layout="constrained")
    ax_elbo, ax_rec, ax_kl = fig.subplots(1, 3)
    ax_elbo.plot(epochs, [-r["train_loss"] for r in history], label="train: -loss (objective)")
    ax_elbo.plot(epochs, [r["test_elbo"] for r in history], label="test ELBO")
    ax_elbo.set_ylabel("nats per data point")
    ax_elbo.set_title("ELBO (higher is better)", fontsize="medium")
    ax_elbo.legend(fontsize="small")
    ax_rec.plot(epochs, [r["test_reconstruction"] for r in history], color="tab:green")
    ax_rec.set_ylabel("E_q[log p(x|z)] (nats)")
    ax_rec.set_title("test reconstruction term", fontsize="medium")
    ax_kl.plot(epochs, [r["test_kl"] for r in history], color="tab:red")
    ax_kl.set_ylabel("KL(q(z|x) || p(z)) (nats)")
    ax_kl.set_title("test KL term", fontsize="medium")
    for ax in (ax_elbo, ax_rec, ax_kl):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    _robust_ylim(ax_elbo, [-r["train_loss"] for r in history] + [r["test_elbo"] for r in history])
    _robust_ylim(ax_rec, [r["test_reconstruction"] for r in history])
    fig.suptitle(title)
    return fig


def _robust_ylim(ax, values):
    """Keep the first epochs' large values from flattening the rest of a curve."""
    values = sorted(v for v in values if v == v)
    if len(values) >= 5:
        lo, hi = values[len(values) // 10], values[-1]
        pad = 0.08 * (hi - lo or 1.0)
        ax.set_ylim(lo - pad, hi + pad)


def bound_tightness_figure(report, title="How tight is the ELBO?"):
    """L_K against K (log axis) with +- one standard error over data points, from ``eval.json``.

    Marks the ELBO (= L_1, dashed) and the PSIS-smoothed estimate of log p(x) (dotted), annotates
    the gap L_S - ELBO at the largest K and states the verdict and k-hat share in the corner. With
    an ``ais`` entry, the AIS estimate (solid green, at L_S plus the paired difference on the images
    AIS scored) and with a ``bdmc`` entry the band from it up by the mean BDMC gap.

    :param dict report: ``eval.json`` as written by ``pyro-vae evaluate`` (keys ``bound_curve``,
        ``stderr``, ``elbo``, ``psis_log_likelihood``, ``gap``, ``khat``, ``verdict``, ``num_images``).
    """
    ks = sorted(int(k) for k in report["bound_curve"])
    values = [report["bound_curve"][str(k)] for k in ks]
    errors = [report["stderr"]["bound_curve"][str(k)] or 0.0 for k in ks]
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.errorbar(ks, values, yerr=errors, marker="o", capsize=3, label="L_K (importance-weighted bound)")
    ax.axhline(report["elbo"], color="tab:gray", linestyle="--", linewidth=1, label=f"ELBO {report['elbo']:.2f}")
    if report.get("psis_log_likelihood") is not None:
        ax.axhline(report["psis_log_likelihood"], color="tab:purple", linestyle=":", linewidth=1.5,
                   label=f"PSIS estimate {report['psis_log_likelihood']:.2f}")
    ais, bdmc = report.get("ais"), report.get("bdmc")
    if ais:  # AIS on (a subset of) the same images, placed by its paired difference to L_S
        level = report["log_likelihood"] + ais["understatement"]
        ax.axhline(level, color="tab:green", linewidth=1.5, label=f"AIS, T={ais['num_steps']} ({ais['num_images']} "
                   f"images): L_{ais['iwae_num_samples']} {ais['understatement']:+.2f}")
        top = level
        if bdmc:  # the error BDMC allows AIS with these settings on simulated data
            ax.axhspan(level, level + bdmc["gap_mean"], color="tab:green", alpha=0.15,
                       label=f"AIS + BDMC gap {bdmc['gap_mean']:.2f} ({bdmc['num_points']} simulated points)")
            top = max(level, level + bdmc["gap_mean"])
        low, high = ax.get_ylim()
        ax.set_ylim(low, max(high, top + 0.08 * (high - low)))  # AIS and its band inside the axes
    top, gap = ks[-1], report["gap"]
    if gap and gap > 0:
        ax.annotate("", xy=(top, values[-1]), xytext=(top, report["elbo"]),
                    arrowprops=dict(arrowstyle="<->", color="tab:red"))
        ax.annotate(f"gap L_{top} - ELBO\n= {gap:.2f} nats", xy=(top, (values[-1] + report["elbo"]) / 2),
                    xytext=(-8, 0), textcoords="offset points", ha="right", va="center", color="tab:red")
    ax.set_xscale("log")
    ax.set_xlabel("K (importance samples per data point, log scale)")
    ax.set_ylabel("nats per data point")
    khat = report.get("khat") or {}
    verdict = (report.get("verdict") or {}).get("level", "")
    note = f"{report['num_images']} images; verdict: {verdict}"
    if khat.get("frac_above_0_7") is not None:
        note += f"\nk-hat > 0.7 for {khat['frac_above_0_7']:.0%} of images"
    if bdmc and not ais:
        note += f"\nBDMC gap {bdmc['gap_mean']:.2f} nats ({bdmc['num_points']} simulated points)"
    ax.text(0.98, 0.04, note, transform=ax.transAxes, ha="right", va="bottom", fontsize="small")
    ax.legend(fontsize="small", loc="upper left")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize="medium")
    return fig


def khat_figure(khat, num_samples=None, title="Pareto k-hat of the importance weights per data point"):
    """k-hat of each data point's weights with the 0.5 and 0.7 thresholds (Vehtari et al. 2024).

    Below 0.5 the importance-weighted estimate converges quickly; between 0.5 and 0.7 slowly; above
    0.7 the weights are too heavy-tailed for L_S to estimate log p(x) (it stays a lower bound).

    :param khat: sequence or tensor of k-hat values (NaN where no tail was fitted).
    :param num_samples: S, the draws per data point, for the axis label.
    """
    values = [float(v) for v in khat]
    points = [(i, v) for i, v in enumerate(values) if v == v]
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.add_subplot()
    bands = [("k <= 0.5", lambda v: v <= 0.5, "tab:green"), ("0.5 < k <= 0.7", lambda v: 0.5 < v <= 0.7, "tab:orange"),
             ("k > 0.7", lambda v: v > 0.7, "tab:red")]
    for label, keep, color in bands:
        sel = [(i, v) for i, v in points if keep(v)]
        share = len(sel) / max(len(points), 1)
        ax.scatter([i for i, _ in sel], [v for _, v in sel], s=8, color=color, label=f"{label}: {share:.0%}")
    for level in (0.5, 0.7):
        ax.axhline(level, color="black", linestyle="--" if level == 0.7 else ":", linewidth=1)
    ax.set_xlabel("data point (test image index)")
    ax.set_ylabel("Pareto k-hat" + (f" of {num_samples} log weights" if num_samples else ""))
    ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="small", loc="best")
    ax.grid(alpha=0.3)
    return fig

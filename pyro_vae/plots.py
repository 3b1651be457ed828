"""Figures: plain data in, a :class:`matplotlib.figure.Figure` out.

No pyplot and no global state: every function builds its own ``Figure`` (rendered by the Agg
canvas when saved), so figures can be made in threads, tests and scripts without a display.
Save with ``fig.savefig(path)``.
"""

import math

from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter


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
    from torchvision.utils import make_grid

    fig = Figure(figsize=(1.0 + 0.7 * max(len(v) for v in rows.values()), 0.8 + 0.75 * len(rows)),
                 layout="constrained")
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, (label, images) in zip(axes, rows.items()):
        images = images.detach().cpu().float().clamp(0, 1).reshape(-1, 1, *image_shape)
        grid = make_grid(images, nrow=len(images), padding=1, pad_value=1.0)[0]  # (H', W')
        ax.imshow(grid.numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title)
    return fig

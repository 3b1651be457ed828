"""Figures of the latent space and of images: plain data in, a :class:`matplotlib.figure.Figure` out.

The 2-d manifold (Kingma & Welling 2014, Fig. 4), the latent scatter of posterior means, and image
grids (reconstructions, prior samples, interpolations), all through torchvision's ``make_grid``.
As in :mod:`pyro_vae.plots.curves`: no pyplot and no global state.
"""

import pyro.distributions as dist
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

from .curves import image_rows_figure
from .images import image_grid, show_grid


def _grid_image(images, image_shape, nrow):
    """``(N, D)`` images in [0, 1] -> one ``(H', W')`` (grey) or ``(H', W', 3)`` (colour) array, ``nrow`` per row."""
    return image_grid(images, image_shape, nrow)


def marginal_quantiles(prior, probs, dims=(0, 1), num_samples=20000, generator_seed=0):
    """Quantiles of the prior's marginals along ``dims``: ``(len(probs), len(dims))``.

    Exact (the inverse CDF) for a factorised Normal prior such as N(0, I), as Kingma & Welling map a
    uniform grid through it; otherwise empirical quantiles of ``num_samples`` prior draws (a mixture).

    :param prior: a distribution with event shape ``(Z,)`` (``vae.prior()``).
    :param probs: ``(G,)`` probabilities in (0, 1).
    """
    probs = torch.as_tensor(probs, dtype=torch.float32)
    base = prior.base_dist if isinstance(prior, dist.Independent) else prior
    if isinstance(base, dist.Normal):
        loc, scale = base.loc.detach()[list(dims)], base.scale.detach()[list(dims)]  # (2,)
        return dist.Normal(loc, scale).icdf(probs[:, None].expand(-1, len(dims)))
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(generator_seed)
        z = prior.sample((num_samples,))[:, list(dims)].float()  # (S, 2)
    return torch.quantile(z, probs, dim=0)  # (G, 2)


def empirical_quantiles(codes, probs, dims=(0, 1)):
    """Quantiles of the codes along ``dims``, ``(G, len(dims))``: the grid for models without a
    usable prior (autoencoders, or a slice through the data's codes)."""
    return torch.quantile(codes[:, list(dims)].double(), torch.as_tensor(probs, dtype=torch.float64), dim=0).float()


def manifold_grid(values, center, dims=(0, 1)):
    """The ``(G * G, Z)`` latent points of a 2-d slice: ``center`` with ``dims`` set to every pair of
    ``values[:, 0]`` (columns, left to right) and ``values[:, 1]`` (rows, top = largest).

    :param values: ``(G, 2)`` grid coordinates per dimension, increasing.
    :param center: ``(Z,)`` the point the slice goes through (the prior mean, or the codes' mean).
    """
    g = values.shape[0]
    cols, rows = values[:, 0], values[:, 1].flip(0)  # image row 0 at the top: the largest z_2
    z = center.detach().float().expand(g, g, -1).clone()  # (G, G, Z)
    z[:, :, dims[0]] = cols[None, :]
    z[:, :, dims[1]] = rows[:, None]
    return z.reshape(g * g, -1)


def manifold_figure(decode, values, center, image_shape, dims=(0, 1), title=None):
    """Decoder means over a ``G x G`` grid of latent points (Kingma & Welling 2014, Fig. 4).

    :param decode: ``z (N, Z) -> (N, D)`` means of p(x|z) in [0, 1] (``vae.decode``); called once,
        on exactly ``G * G`` points.
    :param values: ``(G, 2)`` coordinates along ``dims`` (e.g. :func:`marginal_quantiles` of
        ``linspace(0.05, 0.95, G)``).
    :param center: ``(Z,)`` fixed values of the other dimensions.
    """
    g = values.shape[0]
    images = decode(manifold_grid(values, center, dims))  # (G*G, D)
    grid = _grid_image(images, image_shape, nrow=g)
    fig = Figure(figsize=(6.0, 6.0), layout="constrained")
    ax = fig.add_subplot()
    show_grid(ax, grid)
    step = grid.shape[1] / g  # pixels per cell
    ticks = sorted({0, g // 2, g - 1})
    ax.set_xticks([(i + 0.5) * step for i in ticks], [f"{values[i, 0]:.2f}" for i in ticks])
    ax.set_yticks([(i + 0.5) * step for i in ticks], [f"{values.flip(0)[i, 1]:.2f}" for i in ticks])
    ax.set_xlabel(f"z_{dims[0] + 1}")
    ax.set_ylabel(f"z_{dims[1] + 1}")
    ax.set_title(title or f"decoder means on a {g} x {g} grid of z", fontsize="medium")
    return fig


def pca_2d(codes):
    """Project ``(N, Z)`` codes on their first two principal axes: ``(projected (N, 2), mean (Z,),
    axes (Z, 2), explained variance share (2,))``. Z <= 2 is returned unchanged."""
    codes = codes.detach().double()
    mean = codes.mean(0)
    if codes.shape[1] <= 2:
        eye = torch.eye(codes.shape[1], dtype=codes.dtype)
        return codes, torch.zeros_like(mean), eye, torch.ones(codes.shape[1], dtype=codes.dtype)
    _, s, vt = torch.linalg.svd(codes - mean, full_matrices=False)
    axes = vt[:2].T  # (Z, 2)
    share = (s[:2] ** 2) / (s**2).sum()
    return (codes - mean) @ axes, mean, axes, share


def latent_scatter_figure(codes, labels=None, mixture=None, title=None, max_points=2000):
    """Test posterior means coloured by label; PCA to 2-d when Z > 2.

    :param codes: ``(N, Z)`` posterior means E_q[z|x] (or an autoencoder's codes).
    :param labels: ``(N,)`` integer labels, or None.
    :param dict mixture: a mixture prior's ``{"loc": (K, Z), "scale": (K, Z), "weights": (K,)}``;
        its component means are drawn (projected by the same PCA), with 1-sd ellipses when Z = 2.
    """
    codes = codes[:max_points]
    z_dim = codes.shape[1]
    xy, mean, axes, share = pca_2d(codes)
    fig = Figure(figsize=(5.8, 5.0), layout="constrained")
    ax = fig.add_subplot()
    if labels is not None:
        labels = torch.as_tensor(labels)[: len(codes)]
        for value in sorted(set(labels.tolist())):
            sel = labels == value
            ax.scatter(xy[sel, 0], xy[sel, 1], s=5, alpha=0.7, color=f"C{value % 10}", label=str(value))
        ax.legend(title="label", fontsize="x-small", markerscale=2.5, loc="best", ncol=2)
    else:
        ax.scatter(xy[:, 0], xy[:, 1], s=5, alpha=0.7)
    if mixture is not None:
        loc = (torch.as_tensor(mixture["loc"]).double() - mean) @ axes  # (K, 2)
        weights = torch.as_tensor(mixture["weights"]).double()
        ax.scatter(loc[:, 0], loc[:, 1], marker="x", s=30 + 300 * weights, color="black", linewidths=1.5,
                   label="prior components")
        if z_dim == 2:  # one-standard-deviation ellipse per component, darker for a heavier weight
            scale = torch.as_tensor(mixture["scale"]).double()
            for k in range(loc.shape[0]):
                ax.add_patch(Ellipse(loc[k].tolist(), 2 * scale[k, 0].item(), 2 * scale[k, 1].item(), fill=False,
                                     color="black", alpha=0.2 + 0.6 * (weights[k] / weights.max()).item(),
                                     linewidth=1))
    if z_dim <= 2:
        ax.set_xlabel("z_1")
        ax.set_ylabel("z_2" if z_dim == 2 else "")
    else:
        ax.set_xlabel(f"PC 1 of E_q[z|x] ({share[0]:.0%} of variance)")
        ax.set_ylabel(f"PC 2 ({share[1]:.0%} of variance)")
    if title is None:
        title = f"test posterior means ({len(codes)} points, Z = {z_dim})"
        if mixture is not None:
            title += f"\nx: the {len(mixture['weights'])} prior components' means (size: weight)" + \
                (", ellipses: 1 sd" if z_dim == 2 else "")
    ax.set_title(title, fontsize="medium")
    return fig


def reconstructions_figure(x, reconstruction, image_shape, corrupted=None, title=None):
    """Input row over reconstruction row; for a denoising AE, corrupted input / reconstruction / clean."""
    if corrupted is None:
        rows = {"input": x, "reconstruction": reconstruction}
    else:
        rows = {"corrupted": corrupted, "reconstruction": reconstruction, "clean": x}
    return image_rows_figure(rows, image_shape, title=title or "reconstructions: mean of p(x | z = E_q[z|x])")


def image_grid_figure(images, image_shape, nrow=10, title=None):
    """A grid of ``(N, D)`` images in [0, 1] (e.g. decoder means of prior samples), ``nrow`` per row."""
    grid = _grid_image(images, image_shape, nrow)
    rows = -(-len(images) // nrow)
    fig = Figure(figsize=(0.6 * nrow + 0.4, 0.6 * rows + 0.6), layout="constrained")
    ax = fig.add_subplot()
    show_grid(ax, grid)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize="medium")
    return fig


def image_panels_figure(panels, image_shape, nrow=6, title=None):
    """A table of image grids: ``panels`` is ``{row label: {column label: (images (N, D), caption)}}``,
    each cell a grid of ``nrow`` images per row with its caption above (e.g. one column per model,
    one row per kind of image)."""
    rows = list(panels)
    cols = list(dict.fromkeys(c for r in rows for c in panels[r]))
    fig = Figure(figsize=(0.25 * nrow * len(cols) + 1.6, 0.25 * nrow * len(rows) + 1.2), layout="constrained")
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if col in panels[row]:
                images, caption = panels[row][col]
                show_grid(ax, _grid_image(images[: nrow * nrow], image_shape, nrow))
                ax.set_title(caption, fontsize="small")
            else:
                ax.set_frame_on(False)  # an empty cell: blank, but it keeps its row label
            if i == 0:
                ax.set_title(f"{col}\n{ax.get_title()}", fontsize="small")
            if j == 0:
                ax.set_ylabel(row, fontsize="small")
    if title:
        fig.suptitle(title, fontsize="medium")
    return fig


def interpolate(z_start, z_end, steps):
    """Linear paths between codes: ``(P, Z)`` and ``(P, Z)`` -> ``(P, steps, Z)``, ends included."""
    t = torch.linspace(0, 1, steps, dtype=z_start.dtype, device=z_start.device)[None, :, None]  # (1, T, 1)
    return (1 - t) * z_start[:, None, :] + t * z_end[:, None, :]


def interpolation_figure(paths, image_shape, title=None):
    """One row per path of decoded images ``(P, T, D)``, from the first code (left) to the second."""
    num_paths, steps = paths.shape[:2]
    fig = image_grid_figure(paths.reshape(num_paths * steps, -1), image_shape, nrow=steps,
                            title=title or "linear interpolation between the codes of two test images")
    return fig

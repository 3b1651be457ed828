"""Colour images: synthetic (N, H, W, 3) and (N, 3, H, W) files load and come back as the same pixels
in every image figure."""

import matplotlib.image
import numpy as np
import pytest
import torch

from pyro_vae import load_dataset
from pyro_vae.plots import image_grid_figure, reconstructions_figure
from pyro_vae.plots.images import image_grid


def _colour_file(tmp_path, layout):
    """Six 6 x 7 images: image n is filled with one pure colour (red, green, blue, ...) and a white pixel."""
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255]])
    x = np.broadcast_to(colours[:, None, None, :], (6, 6, 7, 3)).astype(np.uint8).copy()  # (N, H, W, C)
    x[:, 2, 3] = 255
    arr = x if layout == "channel-last" else x.transpose(0, 3, 1, 2)
    path = tmp_path / f"{layout}.npz"
    np.savez(path, x_train=arr, x_test=arr)
    return x, load_dataset(f"npz:{path}", binarize="none")


@pytest.mark.parametrize("layout", ["channel-last", "channel-first"])
def test_colour_images_round_trip_to_the_grid(tmp_path, layout):
    x, data = _colour_file(tmp_path, layout)
    grid = image_grid(data.x_test, data.image_shape, nrow=3, padding=1)  # (2 * 7 + 1, 3 * 8 + 1, 3)
    assert grid.shape == (15, 25, 3)
    for n in range(6):
        row, col = divmod(n, 3)
        cell = grid[1 + row * 7 : 1 + row * 7 + 6, 1 + col * 8 : 1 + col * 8 + 7]  # (H, W, 3)
        assert np.allclose(cell, x[n] / 255, atol=1e-6)


@pytest.mark.parametrize("layout", ["channel-last", "channel-first"])
def test_colour_figures_are_saved_in_colour(tmp_path, layout):
    """The PNG of a reconstructions figure shows the red image red and the blue one blue."""
    x, data = _colour_file(tmp_path, layout)
    fig = reconstructions_figure(data.x_test[:3], data.x_test[:3], data.image_shape, title="r")
    fig.savefig(tmp_path / "r.png", dpi=100)
    png = matplotlib.image.imread(tmp_path / "r.png")[..., :3]  # (H, W, 3) floats
    assert (png[..., 0] - png[..., 2] > 0.9).any() and (png[..., 2] - png[..., 0] > 0.9).any()  # red and blue
    grey = image_grid_figure(torch.rand(4, 42), (6, 7), nrow=2)  # grey data stay grey
    grey.savefig(tmp_path / "g.png", dpi=60)
    g = matplotlib.image.imread(tmp_path / "g.png")[..., :3]
    assert np.allclose(g[..., 0], g[..., 1]) and np.allclose(g[..., 1], g[..., 2])

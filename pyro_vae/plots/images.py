"""Rows of pixels as pictures: flat ``(N, D)`` images in [0, 1] to one grid array, grey or colour.

Every image figure goes through :func:`image_grid` (torchvision's ``make_grid``) and
:func:`show_grid`, so a data set's ``image_shape`` decides alone whether a figure is grey
(``(H, W)``) or colour (``(H, W, 3)``, rows flattened channel-last as the loader serves them).
"""

import torch  # noqa: F401 (the Example:: doctests use it)


def as_images(images, image_shape):
    """``(N, D)`` rows -> ``(N, C, H, W)`` float tensor in [0, 1] on the CPU (C = 1 for grey, 3 for colour).

    Example::

        >>> as_images(torch.rand(5, 32 * 32 * 3), (32, 32, 3)).shape, as_images(torch.rand(5, 64), (8, 8)).shape
        (torch.Size([5, 3, 32, 32]), torch.Size([5, 1, 8, 8]))
    """
    x = images.detach().cpu().float().clamp(0, 1)
    if len(image_shape) == 3:  # (H, W, C), channel-last rows
        return x.reshape(-1, *image_shape).permute(0, 3, 1, 2)
    return x.reshape(-1, 1, *image_shape)


def image_grid(images, image_shape, nrow, padding=1):
    """One ``(H', W')`` array (grey) or ``(H', W', 3)`` array (colour) of ``images`` ``(N, D)``,
    ``nrow`` per row, separated by white lines of ``padding`` pixels.

    Example::

        >>> image_grid(torch.rand(6, 2 * 3 * 3), (2, 3, 3), nrow=3).shape  # colour (H, W, 3) images, 2 rows of 3
        (7, 13, 3)
        >>> image_grid(torch.rand(6, 4), (2, 2), nrow=3).shape  # grey
        (7, 10)
    """
    from torchvision.utils import make_grid

    x = as_images(images, image_shape)
    grid = make_grid(x, nrow=nrow, padding=padding, pad_value=1.0)  # (3, H', W'): grey repeated
    return grid.permute(1, 2, 0).numpy() if x.shape[1] == 3 else grid[0].numpy()


def show_grid(ax, grid):
    """``imshow`` a grid from :func:`image_grid`: grey in a grey colour map on [0, 1], colour as RGB."""
    if grid.ndim == 3:
        ax.imshow(grid, vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")

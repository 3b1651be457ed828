"""How sharp is a set of images? The mean image-gradient magnitude, against a reference set.

For an image I (H x W) with forward differences g_x = I[i, j+1] - I[i, j] and g_y = I[i+1, j] - I[i, j],

    sharpness(I) = mean over the (H-1) x (W-1) interior of sqrt(g_x^2 + g_y^2)

(a Sobel-free "Tenengrad"-style focus measure; e.g. Pertuz, Puig & Garcia 2013, Pattern Recognition
46(5)). Blurring lowers it; so does a grey mean image. Independent pixel noise raises it, so a set of
noisy samples can score "sharper" than the data without any more detail: compare decoder means and
samples from p(x | z) separately. :func:`relative_sharpness` divides by the same measure on the
test images, so 1 means "as sharp as the data".
"""

import torch  # noqa: F401 (the Example:: doctests use it)


def mean_gradient_magnitude(images, image_shape):
    """Mean of sqrt(g_x^2 + g_y^2) over the interior pixels and over the images, a float.

    :param images: ``(N, D)`` with ``D = H * W``.
    :param image_shape: ``(H, W)``.

    Example::

        >>> stripes = torch.tensor([[0.0, 1.0, 0.0, 1.0]]).repeat(4, 1).reshape(1, 16)  # vertical stripes
        >>> mean_gradient_magnitude(stripes, (4, 4)), mean_gradient_magnitude(torch.full((2, 16), 0.5), (4, 4))
        (1.0, 0.0)
    """
    x = images.detach().double().reshape(-1, *image_shape)  # (N, H, W)
    gx = x[:, :-1, 1:] - x[:, :-1, :-1]  # (N, H-1, W-1)
    gy = x[:, 1:, :-1] - x[:, :-1, :-1]
    return (gx**2 + gy**2).sqrt().mean().item()


def relative_sharpness(images, reference, image_shape):
    """:func:`mean_gradient_magnitude` of ``images`` divided by that of ``reference`` (the test images)."""
    return mean_gradient_magnitude(images, image_shape) / mean_gradient_magnitude(reference, image_shape)

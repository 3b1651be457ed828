"""The sharpness measure: known values on stripes and flat images; blur lowers it, noise raises it."""

import torch
import torch.nn.functional as F

from pyro_vae.diagnostics.sharpness import mean_gradient_magnitude, relative_sharpness


def test_known_values():
    stripes = torch.tensor([0.0, 1.0] * 4).repeat(8, 1)  # (8, 8) vertical stripes: |g_x| = 1, g_y = 0
    assert mean_gradient_magnitude(stripes.reshape(1, 64), (8, 8)) == 1.0
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2  # |g_x| = |g_y| = 1
    assert abs(mean_gradient_magnitude(checker.float().reshape(1, 64), (8, 8)) - 2**0.5) < 1e-12
    ramp = torch.arange(8.0, dtype=torch.float64).repeat(8, 1) / 10  # g_x = 0.1 everywhere
    assert abs(mean_gradient_magnitude(ramp.reshape(1, 64), (8, 8)) - 0.1) < 1e-12
    assert mean_gradient_magnitude(torch.full((3, 64), 0.7), (8, 8)) == 0.0


def test_blur_lowers_and_noise_raises_it(digits):
    x = digits.x_test[:100].reshape(-1, 1, 8, 8)
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1).reshape(-1, 64)
    noisy = (x.reshape(-1, 64) + 0.3 * torch.randn(100, 64)).clamp(0, 1)
    assert relative_sharpness(blurred, x.reshape(-1, 64), (8, 8)) < 0.9
    assert relative_sharpness(noisy, x.reshape(-1, 64), (8, 8)) > 1.05
    assert relative_sharpness(x.reshape(-1, 64), x.reshape(-1, 64), (8, 8)) == 1.0

"""The convolutional encoder and decoder (--arch conv): shapes, the pixel layout they read and write,
training, and what the rest of the package asks of a network (particles, vmap, memory estimate)."""

import math

import pyro
import pytest
import torch

from pyro_vae import UserError
from pyro_vae.experiment.build import build_elbo, build_model
from pyro_vae.experiment.config import TrainConfig
from pyro_vae.inference.memory import network_width
from pyro_vae.inference.train import evaluate_elbo, fit
from pyro_vae.models.autoencoders import jacobian_frobenius_sq
from pyro_vae.models.nets import ConvDecoder, ConvEncoder


@pytest.mark.parametrize("image_shape, feature", [((8, 8), (16, 2, 2)), ((28, 28), (16, 7, 7)),
                                                  ((32, 32, 3), (16, 8, 8)), ((7, 9), (16, 1, 2))])
def test_shapes(image_shape, feature):
    d = math.prod(image_shape)
    encoder = ConvEncoder(image_shape, [8, 16], [32], 10)
    decoder = ConvDecoder(5, [32], [16, 8], image_shape, 2 * d)
    assert encoder.feature_shape == feature and decoder.feature_shape == feature
    assert encoder(torch.rand(3, 4, d)).shape == (3, 4, 10)  # (P, B, D) -> (P, B, out)
    assert encoder(torch.rand(d)).shape == (10,)  # one row, as torch.func.vmap hands it
    assert decoder(torch.randn(3, 4, 5)).shape == (3, 4, 2 * d)


def test_encoder_reads_channel_last_rows_as_images():
    """Row pixel (i, j, c) is image[c, i, j]: the same numbers as the convolutions applied by hand."""
    encoder = ConvEncoder((6, 6, 3), [4], [8], 5)
    images = torch.rand(2, 3, 6, 6)  # (N, C, H, W)
    rows = images.permute(0, 2, 3, 1).reshape(2, -1)  # as the loader serves colour: channel-last
    expected = encoder.head(encoder.convs(images).flatten(1))
    assert torch.allclose(encoder(rows), expected)
    assert not torch.allclose(encoder(images.reshape(2, -1)), expected)  # channel-first rows differ


def test_decoder_writes_parameter_blocks_of_channel_last_rows():
    """out[p * D + (i W + j) C + c] is channel p C + c of the last transposed convolution at (i, j)."""
    decoder = ConvDecoder(4, [8], [6], (4, 6, 3), 2 * 72)
    z = torch.randn(5, 4)
    maps = decoder.deconvs(decoder.activation(decoder.trunk(z).reshape(-1, *decoder.feature_shape)))  # (5, 6, 4, 6)
    out = decoder(z)
    for p in range(2):
        for i, j, c in ((0, 0, 0), (3, 5, 2), (1, 2, 1)):
            assert out[:, p * 72 + (i * 6 + j) * 3 + c].tolist() == maps[:, p * 3 + c, i, j].tolist()


def test_sizes_that_do_not_fit_are_user_errors():
    with pytest.raises(UserError, match="8 x 8 images halve only 3 times") as e:
        ConvEncoder((8, 8), [4, 4, 4, 4], [8], 2)
    assert e.value.params() == ("channels",)
    with pytest.raises(UserError, match="not a multiple of the image's 64 values"):
        ConvDecoder(2, [8], [4], (8, 8), 100)
    with pytest.raises(UserError, match="arch='conv' needs images.* rows of 10 values"):
        ConvEncoder((10,), [4], [8], 2)


def test_contractive_penalty_of_a_conv_encoder_is_the_jacobian_norm():
    """The autograd route (no closed form for convolutions) equals the Jacobian built column by column."""
    encoder = ConvEncoder((8, 8), [4], [8], 3, activation="tanh")
    x = torch.rand(2, 64)
    expected = torch.stack([torch.autograd.functional.jacobian(encoder, row).pow(2).sum() for row in x])
    assert torch.allclose(jacobian_frobenius_sq(encoder, x), expected, atol=1e-6)


def test_memory_estimate_counts_feature_maps():
    encoder = ConvEncoder((28, 28), [32, 64], [400], 40)
    assert network_width(encoder) == 32 * 14 * 14 + 64 * 7 * 7 + 400 + 40


def _config(**kw):
    return TrainConfig(**{**dict(dataset="digits", arch="conv", channels=[16, 32], hidden=[64], latent_dim=4,
                                 elbo="meanfield", binarize="static"), **kw}).validate()


def test_conv_vae_on_digits_beats_the_untrained_elbo(digits):
    config = _config()
    pyro.set_rng_seed(0)
    vae = build_model(config, digits)
    before = evaluate_elbo(vae, digits.x_test)["elbo"]
    history = fit(vae, digits, build_elbo(config, vae), epochs=5, batch_size=64, lr=3e-3, quiet=True)
    assert history[-1]["test_elbo"] > before + 15, (before, history[-1]["test_elbo"])


@pytest.mark.parametrize("model", ["ae", "contractive-ae", "denoising-ae", "vae2"])
def test_every_model_builds_with_conv_nets(model, digits):
    config = _config(model=model, posterior="diag", elbo="trace")
    vae = build_model(config, digits)
    assert isinstance(vae.encoder, ConvEncoder) and isinstance(vae.decoder, ConvDecoder)
    loss = build_elbo(config, vae).loss(vae.model, vae.guide, digits.x_train[:8])
    assert math.isfinite(loss)

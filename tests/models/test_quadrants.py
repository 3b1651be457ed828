"""Structured output prediction: the quadrant mask keeps hidden pixels out of every input of the
prediction (prior network, decoder, baseline); the scored pair is the CVAE alone; the baseline's score
is its masked cross-entropy."""

import pyro
import pytest
import torch
import torch.nn.functional as F

import pyro_vae as pv
from pyro_vae.diagnostics.bounds import log_weights
from pyro_vae.models.quadrants import QuadrantCVAE, QuadrantSplit, visible_mask


def quadrant_model(num_visible, side=8, z_dim=3):
    split = QuadrantSplit((side, side), num_visible)
    post, lik = pv.DiagonalNormal(), pv.Bernoulli()
    dv, dh = split.visible_dim, split.hidden_dim
    return QuadrantCVAE(split, pv.MLP(dv, [16], post.num_params(z_dim)),
                        pv.MLP(side * side, [16], post.num_params(z_dim)),
                        pv.ConditionalMLP(z_dim, dv, [16], lik.num_params(dh)), pv.MLP(dv, [16], lik.num_params(dh)),
                        z_dim=z_dim, likelihood=lik, posterior=post)


@pytest.mark.parametrize("num_visible, visible_pixels", [(1, 16), (2, 32), (3, 48)])
def test_masks_are_the_examples_quadrants(num_visible, visible_pixels):
    mask = visible_mask((8, 8), num_visible).reshape(8, 8)
    assert int(mask.sum()) == visible_pixels
    assert bool(mask[4:, :4].all())  # the bottom-left quadrant is always visible
    assert not bool(mask[4:, 4:].any())  # the bottom-right one never


@pytest.mark.parametrize("num_visible", [1, 2, 3])
def test_hidden_pixels_never_reach_the_prediction(num_visible):
    """Change every hidden pixel: the prior network's p(z | x_v), the decoder's output at fixed z, the
    baseline's prediction and the predictions' visible part stay the same; the recognition network (which
    should see them) changes. Fails if any input of the prediction reads a hidden pixel."""
    model = quadrant_model(num_visible)
    x = torch.bernoulli(torch.full((6, 64), 0.4))
    hidden = ~visible_mask((8, 8), num_visible)
    perturbed = x.clone()
    perturbed[:, hidden] = 1 - perturbed[:, hidden]  # flip every hidden pixel
    vis, vis_p = model.split.visible(x), model.split.visible(perturbed)
    assert torch.equal(model.prior_at(vis).mean, model.prior_at(vis_p).mean)
    assert torch.equal(model.prior_at(vis).stddev, model.prior_at(vis_p).stddev)
    z = torch.randn(6, 3)
    assert torch.equal(model.decoder(z, vis), model.decoder(z, vis_p))
    assert torch.equal(model.baseline_prediction(x)[:, hidden], model.baseline_prediction(perturbed)[:, hidden])
    torch.manual_seed(0)
    first = model.predict(x, 2)
    torch.manual_seed(0)
    assert torch.equal(first[..., hidden], model.predict(perturbed, 2)[..., hidden])
    assert torch.equal(first[..., ~hidden], x[:, ~hidden].expand(2, -1, -1))  # the visible pixels as given
    assert not torch.equal(model.encode(x), model.encode(perturbed))


def test_scored_pair_is_the_cvae_without_the_baseline():
    model = quadrant_model(2)
    x = torch.bernoulli(torch.full((5, 64), 0.4))
    pyro.set_rng_seed(1)
    training = log_weights(model.model, model.guide, x, num_samples=4)
    pyro.set_rng_seed(1)
    scored = log_weights(*model.scored_programs(), x, num_samples=4)
    assert torch.allclose(training - scored, model.baseline_log_likelihood(x).expand(4, -1), atol=1e-5)


def test_baseline_score_is_its_masked_cross_entropy():
    model = quadrant_model(1)
    x = torch.bernoulli(torch.full((5, 64), 0.4))
    hidden = ~visible_mask((8, 8), 1)
    logits = model.baseline(x[:, ~hidden])
    cross_entropy = F.binary_cross_entropy_with_logits(logits, x[:, hidden], reduction="none").sum(-1)
    assert torch.allclose(-model.baseline_log_likelihood(x), cross_entropy, atol=1e-4)


@pytest.mark.parametrize("shape, num_visible, message", [
    ((8, 6), 2, "square"), ((64,), 2, "square"), ((8, 8), 4, "1, 2 or 3")])
def test_bad_quadrant_settings_are_refused(shape, num_visible, message):
    with pytest.raises(pv.UserError, match=message):
        visible_mask(shape, num_visible)

"""The discretised logistic (mixture) likelihood, dlogistic[:K]: a true pmf over the 256 levels."""

import math

import pytest
import torch

from pyro_vae import UserError
from pyro_vae.families.discretized import DiscretizedLogistic as Dist
from pyro_vae.families.likelihoods import REGISTRY, DiscretizedLogistic
from pyro_vae.specs import Context, build

LEVELS = torch.arange(256.0, dtype=torch.float64) / 255  # every 8-bit level, as the loader scales it


def _random(k, n=500, dtype=torch.float64, seed=0):
    """Parameters that put mass anywhere, including far outside [0, 1] and on tiny scales."""
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(n, k, generator=g, dtype=dtype) * 0.8 + 0.5
    scale = torch.exp(torch.empty(n, k, dtype=dtype).uniform_(-9, 1, generator=g))
    return loc, scale, torch.randn(n, k, generator=g, dtype=dtype) * 2


@pytest.mark.parametrize("k", [1, 4])
def test_the_256_probabilities_sum_to_one(k):
    loc, scale, logits = _random(k)
    probs = Dist(loc, scale, logits).log_prob(LEVELS[:, None]).exp()  # (256, n)
    assert (probs.sum(0) - 1).abs().max() < 1e-12
    assert (probs[0] > 0).any() and (probs[-1] > 0).any()  # the edge bins carry mass
    loc32, scale32, logits32 = (t.float() for t in (loc, scale, logits))
    probs32 = Dist(loc32, scale32, logits32).log_prob(LEVELS.float()[:, None]).exp()
    # float32: a location is only known to ~6e-8, which a scale down to e^-9 = 1.2e-4 turns into ~5e-4 in a
    # standardised bin edge; the sum is still 1 within that rounding
    assert (probs32.double().sum(0) - 1).abs().max() < 1e-4


def test_log_probability_of_known_cases_by_hand():
    """mu = 0.5, s = 0.1: level 128, the edge levels 0 and 255, and a two-component mixture."""
    sig = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    d = Dist(torch.tensor([[0.5]], dtype=torch.float64), torch.tensor([[0.1]], dtype=torch.float64))
    got = d.log_prob(torch.tensor([128 / 255, 0.0, 1.0], dtype=torch.float64)).tolist()
    h = 0.5 / 255
    hand = [math.log(sig((128 / 255 + h - 0.5) / 0.1) - sig((128 / 255 - h - 0.5) / 0.1)),
            math.log(sig((h - 0.5) / 0.1)), math.log(1 - sig((1 - h - 0.5) / 0.1))]
    assert got == pytest.approx(hand, rel=1e-12)
    mix = Dist(torch.tensor([[0.2, 0.9]], dtype=torch.float64), torch.tensor([[0.05, 0.3]], dtype=torch.float64),
               torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float64))  # weights 1/4, 3/4
    x = 60 / 255
    parts = [sig((x + h - m) / s) - sig((x - h - m) / s) for m, s in ((0.2, 0.05), (0.9, 0.3))]
    assert mix.log_prob(torch.tensor(x, dtype=torch.float64)).item() == pytest.approx(
        math.log(0.25 * parts[0] + 0.75 * parts[1]), rel=1e-12)


def test_tiny_probabilities_stay_finite_and_accurate():
    """Far in a tail, F(upper) - F(lower) underflows as a difference; the identity keeps its log."""
    d = Dist(torch.tensor([[0.0]]), torch.tensor([[0.01]]))
    lp = d.log_prob(torch.tensor(200 / 255)).item()  # 78 scales from the location
    z_upper, z_lower = (200.5 / 255) / 0.01, (199.5 / 255) / 0.01
    hand = -z_lower + math.log1p(-math.exp(z_lower - z_upper))  # sigma(-z) ~ exp(-z) here
    assert math.isfinite(lp) and lp == pytest.approx(hand, rel=1e-5)


def test_mean_and_samples_match_the_probabilities():
    loc, scale, logits = (t[:3] for t in _random(3, seed=1))
    d = Dist(loc, scale, logits)
    probs = d.log_prob(LEVELS[:, None]).exp()  # (256, 3)
    assert torch.allclose(d.mean, (probs * LEVELS[:, None]).sum(0), atol=1e-12)
    draws = d.sample((20000,))  # (20000, 3)
    assert torch.equal(draws * 255, (draws * 255).round()) and draws.min() >= 0 and draws.max() <= 1
    counts = torch.stack([torch.bincount((draws[:, i] * 255).round().long(), minlength=256) for i in range(3)], 1)
    freq = counts / 20000.0
    assert ((freq - probs).abs() <= 5 * (probs * (1 - probs) / 20000).sqrt() + 1e-3).all()  # every level's share


def test_likelihood_reads_its_decoder_outputs_in_blocks():
    lik = DiscretizedLogistic(components=2, min_scale=1e-4)
    assert lik.num_params(5) == 30 and DiscretizedLogistic().num_params(5) == 10
    out = torch.randn(4, 30)  # [logits_1, logits_2 | mu_1, mu_2 | rho_1, rho_2], D = 5 each
    logits, loc, scale = lik.parameters_of(out)
    assert loc.shape == (4, 5, 2)
    assert torch.equal(logits[:, :, 1], out[:, 5:10]) and torch.equal(loc[:, :, 0], out[:, 10:15])
    assert torch.allclose(scale[:, :, 1], 1e-4 + torch.nn.functional.softplus(out[:, 25:30]))
    d = lik(out)
    assert d.batch_shape == (4,) and d.event_shape == (5,)
    x = torch.randint(0, 256, (4, 5)) / 255.0
    per_pixel = Dist(loc, scale, logits).log_prob(x)
    assert torch.allclose(d.log_prob(x), per_pixel.sum(-1))


def test_spec_capability_and_support():
    lik = build(REGISTRY, "dlogistic:3", "likelihood", Context(z_dim=2, data_dim=4))
    assert lik.spec() == "dlogistic:3" and lik.discrete_levels == 256
    assert build(REGISTRY, "dlogistic", "likelihood", Context(z_dim=2, data_dim=4)).components == 1
    lik.check_data(torch.tensor([[0.0, 1 / 255, 254 / 255, 1.0]]))
    with pytest.raises(UserError, match=r"8-bit intensities k / 255"):
        lik.check_data(torch.tensor([[0.0, 0.5, 1.0]]))  # 0.5 is no 8-bit level (e.g. digits' v / 16)
    with pytest.raises(UserError, match="dlogistic:K needs a positive int"):
        build(REGISTRY, "dlogistic:0", "likelihood", Context(z_dim=2, data_dim=4))

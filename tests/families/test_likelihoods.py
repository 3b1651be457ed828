import math

import pytest
import torch

from pyro_vae import Bernoulli, Normal, UserError
from pyro_vae.families.likelihoods import REGISTRY
from pyro_vae.specs import Context, build


def test_bernoulli_log_prob_is_minus_summed_cross_entropy():
    logits, x = torch.randn(4, 10), torch.randint(0, 2, (4, 10)).float()
    expected = -torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    assert torch.allclose(Bernoulli()(logits).log_prob(x), expected, atol=1e-5)


def test_normal_log_prob_is_scaled_squared_error():
    s, mu, x = 0.3, torch.rand(4, 10), torch.rand(4, 10)
    expected = -((x - mu) ** 2).sum(-1) / (2 * s**2) - 10 * math.log(s * math.sqrt(2 * math.pi))
    assert torch.allclose(Normal(s)(mu).log_prob(x), expected, atol=1e-4)


def test_event_shape_is_the_data_shape():
    d = Bernoulli()(torch.zeros(3, 5, 7), event_dim=2)
    assert d.batch_shape == (3,) and d.event_shape == (5, 7)


def test_bernoulli_rejects_grey_data_with_the_fix():
    with pytest.raises(UserError, match=r"binary data in \{0, 1\}.*--binarize"):
        Bernoulli().check_data(torch.tensor([0.0, 0.5, 1.0]), fix="; binarize it (--binarize dynamic)")
    Bernoulli().check_data(torch.tensor([0.0, 1.0]))  # binary data passes


@pytest.mark.parametrize("spec, message", [("normal", "needs its argument"), ("normal:-1", "positive"),
                                           ("normal:abc", "positive"), ("bernoulli:2", "no argument"),
                                           ("poisson", "choose one of bernoulli|normal:SCALE")])
def test_spec_errors(spec, message):
    with pytest.raises(UserError, match=message):
        build(REGISTRY, spec, "likelihood", Context(z_dim=2, data_dim=4))


def test_spec_builds_fixed_scale():
    lik = build(REGISTRY, "normal:0.25", "likelihood", Context(z_dim=2, data_dim=4))
    assert isinstance(lik, Normal) and lik.scale.item() == 0.25

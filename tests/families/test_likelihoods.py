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


def test_bernoulli_log_density_equals_torchs_over_the_whole_range():
    """The softplus form for binary x: within float tolerance of torch's Bernoulli for |logits| up to
    1e4, x at 0 and 1, gradient included; grey x keeps torch's formula bit for bit; it expands and
    validates like torch's."""
    import torch.distributions as tdist

    from pyro_vae.families.likelihoods import BernoulliLogits

    logits = torch.cat([torch.linspace(-50, 50, 1001), torch.tensor([-1e4, -30.5, -20.0, 20.0, 30.5, 1e4])])
    logits = logits.double().repeat(2, 1).requires_grad_()  # (2, L), float64: the reference is exact
    x = torch.stack([torch.zeros(logits.shape[1]), torch.ones(logits.shape[1])]).double()  # x = 0 and 1
    exact = tdist.Bernoulli(logits=logits).log_prob(x)
    with torch.no_grad():  # evaluation: the softplus form
        ours = BernoulliLogits(logits=logits.float()).log_prob(x.float())
    ref = tdist.Bernoulli(logits=logits.float()).log_prob(x.float())  # torch's float32
    assert torch.isfinite(ours).all()
    # within float32 rounding of the float64 value; torch's own float32 cross-entropy is looser
    # (4.6e-7 relative near |l| = 16, where max(l, 0) - l x and log1p(exp(-|l|)) cancel)
    tol = 1e-7 * (1 + exact.abs())
    assert ((ours.double() - exact).abs() <= tol).all() and ((ref.double() - exact).abs() <= 10 * tol).all()
    with_grad = BernoulliLogits(logits=logits.float()).log_prob(x.float())  # training: torch's formula
    assert torch.equal(with_grad, ref)
    (g_ours,) = torch.autograd.grad(with_grad.sum(), logits)
    (g_exact,) = torch.autograd.grad(exact.sum(), logits)
    assert torch.allclose(g_ours, g_exact, atol=1e-7, rtol=0)
    grey = torch.rand(2, logits.shape[1])
    lf = logits.detach().float()
    assert torch.equal(BernoulliLogits(logits=lf, validate_args=False).log_prob(grey),
                       tdist.Bernoulli(logits=lf, validate_args=False).log_prob(grey))
    lik = Bernoulli()(lf[None].expand(3, 2, -1), event_dim=1)  # (P, B) batch, broadcast x
    assert torch.allclose(lik.log_prob(x.float()), tdist.Bernoulli(logits=lf).log_prob(x.float()).sum(-1).expand(3, 2),
                          rtol=1e-6, atol=1e-4)
    assert isinstance(BernoulliLogits(logits=torch.zeros(4)).expand((5, 4)), BernoulliLogits)
    with pytest.raises(ValueError):
        BernoulliLogits(logits=torch.zeros(2), validate_args=True).log_prob(torch.tensor([0.5, 1.0]))

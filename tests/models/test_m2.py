"""M2 (the semi-supervised VAE) against exact answers: the enumerated ELBO is the explicit sum over the
labels (float64, the same z draws) and Pyro's TraceEnum_ELBO computes it; with exact z-posteriors it has
a closed form; the marginal bounds on log p(x) (y summed inside each weight) converge to the exact
log p(x) of a conditional linear-Gaussian model, and the joint ones to log p(x, y)."""

import math

import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO, config_enumerate
from torch.distributions import Independent, Normal

import pyro_vae as pv
from pyro_vae.diagnostics.bounds import bound_curve, log_weights
from pyro_vae.inference.semisupervised import SemiSupervisedObjective
from pyro_vae.labels import pack
from tests.linear_gaussian import ConditionalLinearGaussian

NUM_CLASSES = 10


@pytest.fixture
def truth():
    return ConditionalLinearGaussian(num_classes=NUM_CLASSES)


def linear_classifier(data_dim=5, seed=3):
    torch.manual_seed(seed)
    return torch.nn.Linear(data_dim, NUM_CLASSES)


def explicit_elbo(truth, m2, x, z):
    """sum_n sum_c q(c | x_n) [log p(c) + log p(z_cn) + log p(x_n | c, z_cn) - log q(c | x_n) - log q(z_cn | x_n, c)]
    by hand (torch distributions, no Pyro) at given draws ``z`` ``(C, B, Z)``."""
    log_q_y = torch.log_softmax(m2.classifier(x), -1).T  # (C, B)
    total = torch.zeros((), dtype=torch.float64)
    for c in range(NUM_CLASSES):
        code = torch.nn.functional.one_hot(torch.full((len(x),), c), NUM_CLASSES).double()
        out = m2.encoder(x, code)  # (B, 2Z)
        loc, scale = out[:, : truth.z_dim], torch.nn.functional.softplus(out[:, truth.z_dim :]) + 1e-5
        log_q_z = Independent(Normal(loc, scale), 1).log_prob(z[c])
        log_p_z = Independent(Normal(torch.zeros_like(z[c]), 1.0), 1).log_prob(z[c])
        log_p_x = Independent(Normal(z[c] @ truth.W.T + truth.B[c], truth.s), 1).log_prob(x)
        term = -math.log(NUM_CLASSES) + log_p_z + log_p_x - log_q_y[c] - log_q_z
        total = total + (log_q_y[c].exp() * term).sum()
    return total


def test_enumerated_elbo_is_the_explicit_sum_over_the_ten_labels(truth):
    m2 = truth.m2(linear_classifier(), shift=0.4, scale_factor=1.7)  # q(z | x, y) not exact: z matters
    x, _ = truth.sample(7)
    pyro.set_rng_seed(5)
    enumerated = -TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(m2.model, config_enumerate(m2.guide), x)
    pyro.set_rng_seed(5)  # the same draws: one z per label and image
    guide_trace = poutine.trace(poutine.enum(config_enumerate(m2.guide), first_available_dim=-2)).get_trace(x)
    z = guide_trace.nodes["z"]["value"]
    assert z.shape == (NUM_CLASSES, 7, truth.z_dim) and guide_trace.nodes["y"]["value"].shape == (NUM_CLASSES, 1)
    assert torch.allclose(enumerated, explicit_elbo(truth, m2, x, z), rtol=1e-12, atol=1e-9)
    # the project's objective is TraceEnum_ELBO on the same programs
    pyro.set_rng_seed(5)
    assert pv.make_elbo("enum").loss(m2.model, m2.guide, x) == pytest.approx(-enumerated.item(), rel=1e-12)


def test_enumerated_elbo_has_its_closed_form_with_exact_z_posteriors(truth):
    """With q(z | x, y) = p(z | x, y), log p(x, y, z) - log q(z | x, y) = log p(x, y) for every z, so
    U(x) = sum_y q(y | x) [log p(x, y) - log q(y | x)] exactly, whatever the draws; and with q(y | x) =
    p(y | x) too, U(x) = log p(x)."""
    m2 = truth.m2(linear_classifier())
    x, _ = truth.sample(6)
    log_joint = truth.log_joint_labels(x)  # (B, C)
    log_q = torch.log_softmax(m2.classifier(x), -1)
    expected = (log_q.exp() * (log_joint - log_q)).sum()
    elbo = -TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(m2.model, config_enumerate(m2.guide), x)
    assert elbo.item() == pytest.approx(expected.item(), rel=1e-10)
    assert elbo.item() < truth.log_px(x).sum().item()  # the classifier is not p(y | x): a strict bound

    exact = truth.m2(Bayes(truth))  # q(y | x) = p(y | x)
    elbo = -TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(exact.model, config_enumerate(exact.guide), x)
    assert elbo.item() == pytest.approx(truth.log_px(x).sum().item(), rel=1e-10)


def test_labelled_elbo_and_joint_bounds_are_log_p_x_y(truth):
    m2 = truth.m2(linear_classifier())
    x, y = truth.sample(6)
    exact = truth.log_px_given_y(x, y) - math.log(NUM_CLASSES)  # log p(x, y)
    assert -Trace_ELBO().loss(m2.model, m2.guide, x, y) == pytest.approx(exact.sum().item(), rel=1e-10)
    lw = log_weights(m2.joint_model, m2.joint_guide, pack(x, y, NUM_CLASSES), num_samples=4)
    assert torch.allclose(lw, exact.expand(4, -1), atol=1e-9)  # exact q: every weight is log p(x, y)


class Bayes(torch.nn.Module):
    """q(y | x) = p(y | x), the exact classifier of ``truth``."""

    def __init__(self, truth):
        super().__init__()
        self.truth = truth

    def forward(self, x):
        return self.truth.log_joint_labels(x)


def test_marginal_bounds_are_exact_with_exact_posteriors(truth):
    """y summed inside each weight: w = p(z) sum_y pi_y p(x | y, z) / sum_y q(y | x) q(z | x, y); with
    q(y | x) = p(y | x) and q(z | x, y) = p(z | x, y) the proposal is p(z | x) and every weight is p(x)."""
    m2 = truth.m2(Bayes(truth))
    x, _ = truth.sample(5)
    lw = log_weights(m2.marginal_model, m2.marginal_guide, x, num_samples=50)
    assert torch.allclose(lw, truth.log_px(x).expand(50, -1), atol=1e-9)


def test_marginal_bounds_converge_to_the_exact_log_p_x(truth):
    m2 = truth.m2(Bayes(truth), shift=0.3, scale_factor=1.3)  # q(z | x, y) too wide and shifted
    x, _ = truth.sample(5)
    pyro.set_rng_seed(0)
    lw = log_weights(m2.marginal_model, m2.marginal_guide, x, num_samples=20000)  # (S, B)
    curve = bound_curve(lw, [1, 10, 20000])
    exact = truth.log_px(x)
    assert (curve[1] < curve[10]).all() and (curve[10] < curve[20000] + 1e-3).all()
    assert ((exact - curve[1]) > 0.5).all()  # the ELBO end of the curve is loose by more than half a nat
    assert torch.allclose(curve[20000], exact, atol=0.02)  # L_20000 within 0.02 nats of log p(x)


def test_objective_is_an_unbiased_scaled_sum(truth):
    """-J^alpha / N with the minibatch scales N_u / B_u, N_l / B_l and alpha / B_l: with exact q(z | x, y)
    (no z noise) it equals the hand-written sum."""
    m2 = truth.m2(linear_classifier())
    xu, _ = truth.sample(4, seed=2)
    xl, yl = truth.sample(3, seed=3)
    objective = SemiSupervisedObjective(alpha=7.0, num_labelled=30, num_unlabelled=80)
    log_joint = truth.log_joint_labels(xu)
    log_q = torch.log_softmax(m2.classifier(xu), -1)
    unlabelled = (log_q.exp() * (log_joint - log_q)).sum() * 80 / 4
    labelled = (truth.log_px_given_y(xl, yl) - math.log(NUM_CLASSES)).sum() * 30 / 3
    classification = 7.0 * torch.log_softmax(m2.classifier(xl), -1)[torch.arange(3), yl].mean()
    expected = -(unlabelled + labelled + classification) / 110
    assert objective(m2, xu, xl, yl).item() == pytest.approx(expected.item(), rel=1e-10)


def test_enumerated_terms_are_the_closed_form_with_exact_z_posteriors(truth):
    m2 = truth.m2(linear_classifier())
    x, _ = truth.sample(6)
    log_joint = truth.log_joint_labels(x)
    log_q = torch.log_softmax(m2.classifier(x), -1)
    terms = m2.enumerated_terms(x)
    assert torch.allclose(terms["elbo"], (log_q.exp() * (log_joint - log_q)).sum(-1), atol=1e-9)
    assert torch.allclose(terms["reconstruction"] - terms["kl"], terms["elbo"])



def test_the_resource_estimates_count_every_labels_encoder_and_decoder_pass():
    """y is enumerated: each draw runs the encoder and decoder once per label, the classifier once."""
    import pyro_vae as pv
    from pyro_vae.models.nets import layer_multiply_adds, layer_width

    m2 = pv.SemiSupervisedVAE(pv.MLP(16, [8], 3), pv.ConditionalMLP(16, 3, [8], 4), pv.ConditionalMLP(2, 3, [8], 16),
                              num_classes=3, z_dim=2)
    assert m2.activation_width() == layer_width(m2.classifier) + 3 * (layer_width(m2.encoder) + layer_width(m2.decoder))
    assert m2.multiply_adds() == layer_multiply_adds(m2.classifier) + 3 * (
        layer_multiply_adds(m2.encoder) + layer_multiply_adds(m2.decoder))

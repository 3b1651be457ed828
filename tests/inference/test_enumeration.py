"""SVI on a discrete latent: ``enum`` (TraceEnum_ELBO) sums z out exactly; ``trace`` gives the amortised
guide's encoder the score-function estimator, unbiased for the exact gradient."""

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO, config_enumerate

from pyro_vae import MLP, Bernoulli, MixtureModel, make_elbo


def _mixture(encoder=False, k=3, d=8, seed=0):
    torch.manual_seed(seed)
    mix = MixtureModel(k, Bernoulli(), d, encoder=MLP(d, [6], k).double() if encoder else None).double()
    with torch.no_grad():
        mix.decoder.table.normal_(0, 1.5)
        mix.weights.logits.normal_()
    return mix


def _grads(mix, loss):
    mix.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in mix.parameters()]


def test_enum_with_the_exact_guide_is_the_marginal_likelihood_and_its_gradient():
    """Three routes to the same value and gradient: enum over the exact (detached) posterior guide,
    TraceEnum_ELBO enumerating z in the model with an empty guide, and autograd of log p(x)."""
    mix, x = _mixture(), torch.bernoulli(torch.full((6, 8), 0.4, dtype=torch.float64))
    enum = make_elbo("enum")
    loss = enum.differentiable_loss(mix.model, mix.guide, x)
    grads = _grads(mix, loss)
    in_model = TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(config_enumerate(mix.model),
                                                                       lambda x: None, x)
    assert in_model.item() == pytest.approx(loss.item(), abs=1e-10)
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(grads, _grads(mix, in_model), strict=False))
    exact = -mix.log_marginal(x).sum()
    assert exact.item() == pytest.approx(loss.item(), abs=1e-10)
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(grads, _grads(mix, exact), strict=False))


def test_enum_with_an_amortised_guide_is_the_exact_elbo_with_no_variance():
    mix, x = _mixture(encoder=True), torch.bernoulli(torch.full((5, 8), 0.5, dtype=torch.float64))
    log_joint, log_q = mix.log_joint_table(x), mix.guide_table(x)
    exact_elbo = (log_q.exp() * (log_joint - log_q)).sum()
    enum = make_elbo("enum")
    first = enum.differentiable_loss(mix.model, mix.guide, x)
    assert -first.item() == pytest.approx(exact_elbo.item(), abs=1e-10)
    g1 = _grads(mix, first)
    g2 = _grads(mix, enum.differentiable_loss(mix.model, mix.guide, x))
    assert all(torch.equal(a, b) for a, b in zip(g1, g2, strict=False))  # nothing is sampled
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(g1, _grads(mix, -exact_elbo), strict=False))


def test_trace_gives_the_encoder_an_unbiased_score_function_gradient():
    """Trace_ELBO's encoder gradient (REINFORCE: the categorical draw has no reparameterisation)
    averaged over 20,000 particles matches the exact gradient from enumeration; one particle is noisy."""
    mix, x = _mixture(encoder=True), torch.bernoulli(torch.full((4, 8), 0.5, dtype=torch.float64))
    exact = _grads(mix, make_elbo("enum").differentiable_loss(mix.model, mix.guide, x))
    encoder = [i for i, (n, _) in enumerate(mix.named_parameters()) if n.startswith("encoder")]
    pyro.set_rng_seed(0)
    many = Trace_ELBO(num_particles=20000, vectorize_particles=True, max_plate_nesting=1)
    mc = _grads(mix, many.differentiable_loss(mix.model, mix.guide, x))
    flat = lambda gs: torch.cat([gs[i].flatten() for i in encoder])  # noqa: E731
    assert (flat(mc) - flat(exact)).norm() < 0.05 * flat(exact).norm()
    one = Trace_ELBO(max_plate_nesting=1)
    singles = torch.stack([flat(_grads(mix, one.differentiable_loss(mix.model, mix.guide, x))) for _ in range(50)])
    assert singles.std(0).norm() > flat(exact).norm()  # one draw: noise larger than the signal


def test_meanfield_iwae_and_em_are_refused_where_they_cannot_work():
    from pyro_vae.errors import UserError
    from pyro_vae.inference.objectives import check_model

    amortised, exact = _mixture(encoder=True), _mixture()
    for spec in ("meanfield", "iwae:3", "jit-meanfield"):
        with pytest.raises(UserError, match="discrete latent"):
            check_model(make_elbo(spec), exact)
    with pytest.raises(UserError, match="em needs .* exact posterior"):
        check_model(make_elbo("em"), amortised)
    check_model(make_elbo("em"), exact)
    check_model(make_elbo("enum"), amortised)
    check_model(make_elbo("trace"), amortised)

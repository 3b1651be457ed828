import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from pyro_vae.inference.traces import get_traces
from tests.helpers import small_vae


def test_site_shapes_for_a_batch(digits):
    vae, x = small_vae(), digits.x_train[:5]
    model_trace, guide_trace = get_traces(vae.model, vae.guide, x)
    for trace in (model_trace, guide_trace):
        trace.compute_log_prob()
        z = trace.nodes["z"]
        assert z["fn"].batch_shape == (5,) and z["fn"].event_shape == (3,)
        assert z["value"].shape == (5, 3) and z["log_prob"].shape == (5,)
        assert [f.name for f in z["cond_indep_stack"]] == ["data"]
    x_site = model_trace.nodes["x"]
    assert x_site["is_observed"] and x_site["fn"].batch_shape == (5,) and x_site["fn"].event_shape == (64,)
    rows = [line.split() for line in model_trace.format_shapes().splitlines()]
    assert ["z", "dist", "5", "|", "3"] in rows and ["x", "dist", "5", "|", "64"] in rows


def test_site_shapes_with_vectorized_particles(digits):
    vae, x = small_vae(), digits.x_train[:5]
    elbo = Trace_ELBO(num_particles=4, vectorize_particles=True, max_plate_nesting=1)
    model_trace, guide_trace = elbo._get_vectorized_trace(vae.model, vae.guide, (x,), {})
    assert guide_trace.nodes["z"]["value"].shape == (4, 5, 3)
    assert model_trace.nodes["x"]["fn"].batch_shape == (4, 5)


def test_plate_scales_minibatch_by_n_over_b(digits):
    vae, x = small_vae(), digits.x_train[:8]
    guide_trace = poutine.trace(vae.guide).get_trace(x, num_data=40)
    scaled = poutine.trace(poutine.replay(vae.model, guide_trace)).get_trace(x, num_data=40)
    unscaled = poutine.trace(poutine.replay(vae.model, guide_trace)).get_trace(x)
    assert torch.allclose(scaled.log_prob_sum(), 5.0 * unscaled.log_prob_sum(), rtol=1e-6)


def test_minibatch_loss_is_unbiased_for_full_data_loss(digits):
    """E over random minibatches (and z) of the scaled minibatch loss equals the full-data loss."""
    vae, x, n, b = small_vae(), digits.x_train[:40], 40, 8
    elbo = TraceMeanField_ELBO()
    full = torch.tensor([elbo.loss(vae.model, vae.guide, x) for _ in range(400)])
    mini = torch.tensor([elbo.loss(vae.model, vae.guide, x[torch.randperm(n)[:b]], num_data=n)
                         for _ in range(2000)])
    se = (full.var() / len(full) + mini.var() / len(mini)).sqrt()
    assert abs(full.mean() - mini.mean()) < 4 * se
    # and the test can fail: an unscaled minibatch loss is far off
    assert abs(full.mean() - mini.mean() / 5) > 20 * se


def test_meanfield_kl_is_the_closed_form(digits):
    """-KL = 1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2), to float precision, in the loss itself."""
    vae, x = small_vae(), digits.x_train[:7]
    out = vae.encoder(x)
    mu, sigma = vae.posterior.loc_scale(out)
    neg_kl = 0.5 * (1 + torch.log(sigma**2) - mu**2 - sigma**2).sum(-1)  # (B,)

    pyro.set_rng_seed(3)
    loss = TraceMeanField_ELBO().loss(vae.model, vae.guide, x)
    pyro.set_rng_seed(3)
    model_trace, _ = get_traces(vae.model, vae.guide, x)
    rec = model_trace.nodes["x"]["fn"].log_prob(x)  # same z as the loss used
    assert torch.allclose(torch.tensor(-loss, dtype=torch.float64), (rec + neg_kl).sum().double(), rtol=1e-5)


def test_trace_and_meanfield_agree_in_expectation(digits):
    vae, x = small_vae(), digits.x_train[:16]
    kw = dict(num_particles=50, vectorize_particles=True, max_plate_nesting=1)
    trace = torch.tensor([Trace_ELBO(**kw).loss(vae.model, vae.guide, x) for _ in range(60)])
    meanfield = torch.tensor([TraceMeanField_ELBO(**kw).loss(vae.model, vae.guide, x) for _ in range(60)])
    se = (trace.var() / 60 + meanfield.var() / 60).sqrt()
    assert abs(trace.mean() - meanfield.mean()) < 4 * se
    assert meanfield.var() < trace.var()  # analytic KL removes the KL term's sampling noise


def test_two_vaes_train_their_own_parameters_with_pyro_svi(digits):
    """Param names are unique per instance, so Pyro's own SVI + pyro.optim updates the right tensors."""
    from pyro.infer import SVI
    from pyro.optim import Adam

    x = digits.x_train[:32]
    first, second = small_vae(seed=1), small_vae(seed=2)
    for vae in (first, second):
        svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), Trace_ELBO())
        before = [p.detach().clone() for p in vae.parameters()]
        svi.step(x)
        assert all(not torch.equal(a, b) for a, b in zip(before, vae.parameters(), strict=False))


def test_helpers_shapes(digits):
    vae, x = small_vae(), digits.x_train[:6]
    assert vae.encode(x).shape == (6, 3)
    recon = vae.reconstruct(x)
    assert recon.shape == (6, 64) and recon.min() >= 0 and recon.max() <= 1
    assert vae.sample(4).shape == (4, 64)


@pytest.mark.parametrize("bad", [0, -2])
def test_bad_latent_size(bad):
    from pyro_vae import StandardNormal, UserError

    with pytest.raises(UserError, match="z_dim must be a positive integer"):
        StandardNormal(bad)

"""Path-derivative estimators (``stl``, ``iwae-dreg:K``) against known answers.

- On the linear-Gaussian model the ELBO of any Gaussian q has a closed form, so its exact gradient
  is known: the mean of many ``stl`` gradients must match it (encoder and decoder).
- With q the exact posterior, ``log w = log p(x)`` for every z: ``stl``'s and ``iwae-dreg:K``'s encoder
  gradients are zero for every draw, ``trace``'s is not (this also catches a flow scored through its
  cached base sample, whose gradient reaches phi directly).
- ``iwae-dreg:K`` is unbiased for the gradient of L_K (the mean of ``iwae:K``'s), its decoder
  gradient is ``iwae:K``'s draw for draw, and the encoder's SNR falls with K under ``iwae:K`` and
  rises under ``iwae-dreg:K`` (Rainforth et al. 2018; Tucker et al. 2019).
- Same seed, same loss value: ``stl`` = ``trace``, ``iwae-dreg:K`` = ``iwae:K``.

Every estimate is averaged over many draws in one call by repeating the data rows: the batch's
gradient is then the sum of independent per-row gradients.
"""

import math

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
import torch.nn as nn
from pyro.infer import SVI
from pyro.optim import Adam

from pyro_vae import IAF, VAE, DiagonalNormal, FullNormal, LowRankNormal, Normal, StandardNormal, UserError, make_elbo
from pyro_vae.diagnostics.kl_study import gradient_variance
from pyro_vae.inference import estimators
from pyro_vae.inference.estimators import STL_ELBO, IWAE_DReG_ELBO
from pyro_vae.inference.objectives import check_model
from tests.helpers import small_vae
from tests.linear_gaussian import MIN_SCALE, LinearGaussian


def _linear(weight, bias):
    layer = nn.Linear(weight.shape[1], weight.shape[0]).double()
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return layer


def _softplus_inv(y):
    return torch.log(torch.expm1(y - MIN_SCALE))


def exact_vae(lg, family="diag", num_flows=2):
    """A float64 VAE on ``lg`` whose linear encoder outputs the exact posterior in ``family``:
    ``diag`` and ``iaf`` (identity flows on the diagonal base) need orthogonal columns of W;
    ``lowrank:1`` gets a zero factor; ``full`` the Cholesky factor of the posterior covariance."""
    z, d = lg.z_dim, lg.data_dim
    gain, offset = lg.post_gain, -lg.post_gain @ lg.b  # loc = gain x + offset
    if family == "full":
        posterior, tril = FullNormal(MIN_SCALE), torch.linalg.cholesky(lg.post_cov)
        rows, cols = torch.tril_indices(z, z, offset=-1)
        extra = [_softplus_inv(tril.diagonal()), tril[rows, cols]]
    else:
        sd = lg.post_cov.diagonal().sqrt()
        posterior = {"diag": lambda: DiagonalNormal(MIN_SCALE), "lowrank:1": lambda: LowRankNormal(1, MIN_SCALE),
                     "iaf": lambda: IAF(z, num_flows, min_scale=MIN_SCALE)}[family]()
        extra = [_softplus_inv(sd)] + ([torch.zeros(z)] if family == "lowrank:1" else [])
    bias = torch.cat([offset] + [e.double() for e in extra])
    weight = torch.cat([gain, torch.zeros(len(bias) - z, d, dtype=torch.float64)])
    vae = VAE(_linear(weight, bias), _linear(lg.W, lg.b), prior=StandardNormal(z), likelihood=Normal(lg.s),
              posterior=posterior)
    return vae.double()


def perturb(vae, scale=0.3, seed=0):
    """Move every parameter by Gaussian noise: q is no longer the posterior, the decoder not the truth."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return vae


def closed_form_elbo(vae, x, noise):
    """ELBO(q) of each row of x for the linear-Gaussian likelihood and N(0, I) prior, any Gaussian q:
    E_q log N(x; W z + b, s^2 I) - KL(N(m, S) || N(0, I)), differentiable in every parameter."""
    q = vae.posterior_at(x)
    m = q.mean
    cov = torch.diag_embed(q.variance) if isinstance(q, dist.Independent) else q.covariance_matrix
    w, b = vae.decoder.weight, vae.decoder.bias
    d, z = w.shape
    resid = x - m @ w.T - b
    expected_sq = (resid**2).sum(-1) + torch.einsum("dj,njk,dk->n", w, cov, w)
    log_lik = -0.5 * d * math.log(2 * math.pi * noise**2) - expected_sq / (2 * noise**2)
    kl = 0.5 * (cov.diagonal(dim1=-2, dim2=-1).sum(-1) + (m**2).sum(-1) - z - torch.logdet(cov))
    return log_lik - kl


def _grads(vae, loss):
    grads = torch.autograd.grad(loss, list(vae.parameters()))
    return {name: g for (name, _), g in zip(vae.named_parameters(), grads, strict=True)}


def mean_gradient(vae, x, objective, calls=20, copies=500, seed=0):
    """Mean ELBO gradient per data row of ``x`` and its standard error: ``calls`` estimates, each the
    average over ``copies`` repeats of every row (independent draws)."""
    rows = x.repeat(copies, 1)
    per_call = []
    for c in range(calls):
        pyro.set_rng_seed(seed + c)
        loss = make_elbo(objective).differentiable_loss(vae.model, vae.guide, rows) / copies
        per_call.append(_grads(vae, -loss))
    mean = {k: torch.stack([g[k] for g in per_call]).mean(0) for k in per_call[0]}
    se = {k: torch.stack([g[k] for g in per_call]).std(0) / math.sqrt(calls) for k in per_call[0]}
    return mean, se


# --- unbiased: stl against the exact gradient, iwae-dreg:K against iwae:K ---------------------------

@pytest.mark.parametrize("family", ["diag", "lowrank:1", "full"])
def test_stl_mean_gradient_is_the_exact_elbo_gradient(family):
    lg = LinearGaussian(z_dim=2, data_dim=4, weight=torch.tensor([[1.0, 0.3], [0.2, -0.8], [0.5, 0.5], [-0.4, 0.9]]))
    vae, x = perturb(exact_vae(lg, family)), lg.sample_x(3)
    exact = _grads(vae, closed_form_elbo(vae, x, lg.s).sum())
    mean, se = mean_gradient(vae, x, "stl")
    for name in exact:
        z = ((mean[name] - exact[name]) / se[name].clamp_min(1e-12)).abs()
        assert z.max() < 5, (name, z.max().item())
    # ... and the test can fail: dropping the path through z in log q too leaves only E_q[log p(x, z)]
    biased, _ = _mean_without_entropy_path(vae, x)
    assert max(((biased[n] - exact[n]) / se[n].clamp_min(1e-12)).abs().max() for n in exact if "encoder" in n) > 20


def _mean_without_entropy_path(vae, x, copies=2000):
    """The gradient of log p(x, z) - log q(z|x) with log q's value taken as a constant (a wrong
    'stop everything' estimator), averaged like :func:`mean_gradient`."""
    rows = x.repeat(copies, 1)
    pyro.set_rng_seed(99)
    guide_trace = poutine.trace(vae.guide).get_trace(rows)
    model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(rows)
    log_w = model_trace.log_prob_sum() - guide_trace.log_prob_sum().detach()
    return _grads(vae, log_w / copies), None


def test_iwae_dreg_mean_gradient_is_iwae_s_and_its_decoder_gradient_is_iwae_s_draw_for_draw():
    lg = LinearGaussian(z_dim=2, data_dim=4)
    vae, x, k = perturb(exact_vae(lg)), lg.sample_x(3), 5
    diffs, iwae_grads = [], []
    for c in range(30):  # paired: the same draws under both estimators
        rows = x.repeat(200, 1)
        pyro.set_rng_seed(c)
        a = _grads(vae, make_elbo(f"iwae:{k}").differentiable_loss(vae.model, vae.guide, rows))
        pyro.set_rng_seed(c)
        b = _grads(vae, make_elbo(f"iwae-dreg:{k}").differentiable_loss(vae.model, vae.guide, rows))
        for name in a:
            if "decoder" in name:
                assert torch.allclose(a[name], b[name], rtol=1e-9, atol=1e-9), name
        diffs.append({n: b[n] - a[n] for n in a if "encoder" in n})
        iwae_grads.append(a)
    for name in diffs[0]:
        d = torch.stack([g[name] for g in diffs])  # (calls, ...)
        z = (d.mean(0) / (d.std(0) / math.sqrt(len(d))).clamp_min(1e-12)).abs()
        assert z.max() < 5, (name, z.max().item())
    # The test can fail: IWAE with STL's gradient (w~_k instead of w~_k^2 on the path) is biased
    # (Tucker et al. 2019, sec. 3). Its encoder mean is far from iwae:K's with the same draws.
    hook = estimators._weighted
    try:
        estimators._weighted = lambda weights, batch_dim: (lambda grad: grad)
        pyro.set_rng_seed(0)
        stl_iwae = _grads(vae, make_elbo(f"iwae-dreg:{k}").differentiable_loss(vae.model, vae.guide, x.repeat(6000, 1)))
    finally:
        estimators._weighted = hook
    name = "encoder.bias"
    ref = torch.stack([g[name] for g in iwae_grads])
    assert ((stl_iwae[name] / 30 - ref.mean(0)).abs() / (ref.std(0) / math.sqrt(len(ref)))).max() > 8


def test_iaf_stl_and_dreg_agree_with_trace_and_iwae_in_the_mean(digits):
    """The flow family, whose log q needs the flow's inverse: unbiased against the standard estimators."""
    torch.manual_seed(0)
    post = IAF(3, 2)
    for flow in post.flows:  # move the flows off the identity
        nn.init.normal_(flow.arn.layers[-1].weight, std=0.3)
    vae = small_vae()
    vae = VAE(vae.encoder, vae.decoder, prior=StandardNormal(3), likelihood=vae.likelihood, posterior=post)
    x = digits.x_train[:2]
    for standard, path in (("trace", "stl"), ("iwae:4", "iwae-dreg:4")):
        diffs = []
        for c in range(16):
            rows = x.repeat(150, 1)
            pyro.set_rng_seed(c)
            a = _grads(vae, make_elbo(standard).differentiable_loss(vae.model, vae.guide, rows))
            pyro.set_rng_seed(c)
            b = _grads(vae, make_elbo(path).differentiable_loss(vae.model, vae.guide, rows))
            diffs.append(torch.cat([(b[n] - a[n]).reshape(-1) for n in a]))
        d = torch.stack(diffs).double()
        live = d.std(0) > 0
        z = (d.mean(0)[live] / (d.std(0)[live] / math.sqrt(len(d)))).abs()
        assert z.max() < 5.5, (path, z.max().item())
        assert live.sum() > 100  # flows, encoder and decoder all differ draw by draw


def _two_layer():
    """z1 ~ N(0, 1); z2 ~ N(z1, 0.5^2); x ~ N(z2, 0.3^2). Bottom-up guide with pyro.param:
    z2 ~ N(a x + c, s2), z1 ~ N(m z2, s1): log q(z1 | z2) depends on z2, a path STL must keep."""
    def model(x):
        with pyro.plate("data", x.shape[0]):
            z1 = pyro.sample("z1", dist.Normal(0.0, 1.0))
            z2 = pyro.sample("z2", dist.Normal(z1, 0.5))
            pyro.sample("x", dist.Normal(z2, 0.3), obs=x)

    def guide(x):
        a, c = pyro.param("a", torch.tensor(0.6)), pyro.param("c", torch.tensor(0.1))
        s2 = pyro.param("s2", torch.tensor(0.5), constraint=dist.constraints.positive)
        m, s1 = pyro.param("m", torch.tensor(0.4)), pyro.param("s1", torch.tensor(0.7),
                                                                constraint=dist.constraints.positive)
        with pyro.plate("data", x.shape[0]):
            z2 = pyro.sample("z2", dist.Normal(a * x + c, s2))
            pyro.sample("z1", dist.Normal(m * z2, s1))

    return model, guide


def test_a_bottom_up_guide_with_constrained_params_keeps_the_path_through_the_first_draw():
    model, guide = _two_layer()
    x = torch.tensor([0.8, -1.1]).repeat(4000)
    guide(x)  # create the params
    names = ["a", "c", "s2", "m", "s1"]
    leaves = [pyro.get_param_store().get_param(n).unconstrained() for n in names]
    for standard, path in (("trace", "stl"), ("iwae:3", "iwae-dreg:3")):
        diffs = []
        for c in range(20):
            grads = []
            for name in (standard, path):
                pyro.set_rng_seed(c)
                grads.append(torch.stack(torch.autograd.grad(make_elbo(name).differentiable_loss(model, guide, x),
                                                             leaves)))
            diffs.append(grads[1] - grads[0])
        d = torch.stack(diffs)
        z = (d.mean(0) / (d.std(0) / math.sqrt(len(d)))).abs()
        assert z.max() < 5, (path, z)
        assert (d.std(0) > 0).all()  # a different estimator draw by draw, not the same one


# --- zero at the exact posterior ------------------------------------------------------------------

@pytest.mark.parametrize("family", ["diag", "lowrank:1", "full", "iaf"])
def test_stl_and_dreg_encoder_gradients_vanish_at_the_exact_posterior_trace_s_does_not(family):
    lg = LinearGaussian(z_dim=2, data_dim=5) if family != "full" else \
        LinearGaussian(z_dim=2, data_dim=3, weight=torch.tensor([[1.0, 0.3], [0.2, -0.8], [0.5, 0.5]]))
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # Pyro's AffineAutoregressive inverts in the default dtype
    try:
        vae = exact_vae(lg, family)
        x = lg.sample_x(6)
        assert torch.allclose(closed_form_elbo(vae, x, lg.s), lg.log_px(x)) if family != "iaf" else True
        encoder = [n for n, _ in vae.named_parameters() if not n.startswith("decoder")]
        assert any(n.startswith("posterior.flows") for n in encoder) == (family == "iaf")
        for draw in range(5):
            for name, zero in (("trace", False), ("stl", True), ("iwae-dreg:4", True), ("iwae:4", False)):
                pyro.set_rng_seed(draw)
                g = _grads(vae, make_elbo(name).differentiable_loss(vae.model, vae.guide, x))
                largest = max(g[n].abs().max().item() for n in encoder)
                assert (largest < 1e-9) if zero else (largest > 1e-2), (name, draw, largest)
                assert max(g[n].abs().max().item() for n in g if n.startswith("decoder")) > 1e-2
    finally:
        torch.set_default_dtype(old)


def test_svi_with_stl_and_dreg_at_the_exact_posterior_moves_only_the_decoder():
    lg = LinearGaussian(z_dim=2, data_dim=5)
    x = lg.sample_x(10)
    for objective in (STL_ELBO(num_particles=3, vectorize_particles=True, max_plate_nesting=1),
                      IWAE_DReG_ELBO(num_particles=3)):
        pyro.clear_param_store()
        vae = exact_vae(lg)
        before = {n: p.detach().clone() for n, p in vae.named_parameters()}
        svi = SVI(vae.model, vae.guide, Adam({"lr": 0.01}), loss=objective)
        assert math.isfinite(svi.step(x, num_data=100))  # one step: after it q is no longer exact
        for n, p in vae.named_parameters():
            moved = (p - before[n]).abs().max().item()  # Adam moves a parameter by ~lr, or by ~lr * g / eps for g ~ 0
            assert (moved > 1e-3) if n.startswith("decoder") else (moved < 1e-5), (type(objective).__name__, n, moved)
            assert p.requires_grad  # the freeze is undone


# --- SNR against K ---------------------------------------------------------------------------------

def test_encoder_snr_falls_with_k_for_iwae_and_rises_for_dreg():
    """Near the posterior (weights close to uniform, the papers' asymptotic regime; measured here:
    iwae 0.50 -> 0.071 and iwae-dreg 1.49 -> 6.93 from K = 1 to 64). Far from it, with degenerate
    weights, neither trend need hold at these K: both estimators then follow the heaviest draw."""
    lg = LinearGaussian(z_dim=2, data_dim=5)
    vae, x = lg.vae(shift=0.2, scale_factor=1.2), lg.sample_x(4)
    groups = {"encoder": list(vae.encoder.parameters()), "decoder": list(vae.decoder.parameters())}
    snr = {}
    for name in ("iwae", "iwae-dreg"):
        for k in (1, 64):
            result = gradient_variance(vae.model, vae.guide, x, make_elbo(f"{name}:{k}"), groups, repeats=300, seed=0)
            snr[name, k] = {g: result["groups"][g]["snr"] for g in groups}
    # Rainforth et al. (2018): IWAE's encoder SNR ~ 1/sqrt(K); Tucker et al. (2019): DReG's grows.
    assert snr["iwae", 64]["encoder"] < 0.5 * snr["iwae", 1]["encoder"], snr
    assert snr["iwae-dreg", 64]["encoder"] > 2 * snr["iwae-dreg", 1]["encoder"], snr
    assert snr["iwae-dreg", 64]["encoder"] > 4 * snr["iwae", 64]["encoder"], snr
    # the decoder's gradient is the same under both, so its SNR is too, and it grows with K
    for k in (1, 64):
        assert snr["iwae", k]["decoder"] == pytest.approx(snr["iwae-dreg", k]["decoder"], rel=1e-6)
    assert snr["iwae", 64]["decoder"] > snr["iwae", 1]["decoder"]


# --- same seed, same value -------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [{}, {"num_data": 50}, {"num_data": 50, "kl_scale": 0.4}])
def test_stl_loss_is_trace_s_and_dreg_loss_is_iwae_s(kwargs, digits):
    vae, x = small_vae(), digits.x_train[:6]
    pairs = [("trace", "stl", 1), ("trace", "stl", 3), ("iwae:1", "iwae-dreg:1", 1), ("iwae:5", "iwae-dreg:5", 1)]
    for standard, path, particles in pairs:
        if "iwae" in path and "kl_scale" in kwargs:
            continue
        values = []
        for name in (standard, path):
            elbo = make_elbo(name, num_particles=particles)
            pyro.set_rng_seed(7)
            loss = elbo.loss(vae.model, vae.guide, x, **kwargs)
            pyro.set_rng_seed(7)
            diff = elbo.differentiable_loss(vae.model, vae.guide, x, **kwargs).item()
            pyro.set_rng_seed(7)
            values += [loss, diff, elbo.loss_and_grads(vae.model, vae.guide, x, **kwargs)]
        assert values[3:] == pytest.approx(values[:3], rel=1e-6, abs=1e-4), (standard, path)
        assert len(set(round(v, 3) for v in values)) == 1


def test_stl_under_a_kl_weight_is_trace_s_gradient_in_the_mean(digits):
    """The dropped score term has mean zero whatever the weight of log q, so beta keeps STL unbiased."""
    vae, x = small_vae(), digits.x_train[:2].repeat(300, 1)
    diffs = []
    for c in range(16):
        grads = []
        for name in ("trace", "stl"):
            pyro.set_rng_seed(c)
            grads.append(_grads(vae, make_elbo(name).differentiable_loss(vae.model, vae.guide, x, kl_scale=0.3)))
        diffs.append(torch.cat([(grads[1][n] - grads[0][n]).reshape(-1) for n in grads[0]]))
    d = torch.stack(diffs).double()
    live = d.std(0) > 0
    assert ((d.mean(0)[live] / (d.std(0)[live] / 4)).abs()).max() < 5.5


# --- refusals ----------------------------------------------------------------------------------------

def test_dreg_refuses_a_kl_weight_and_both_refuse_non_reparameterised_sites(digits):
    vae, x = small_vae(), digits.x_train[:4]
    with pytest.raises(UserError, match=r"iwae-dreg:3 .* KL weight, but site 'z' has one of 0.5; use beta=1 and "
                       r"kl_warmup=0, or elbo='iwae:3'") as e:
        make_elbo("iwae-dreg:3").differentiable_loss(vae.model, vae.guide, x, kl_scale=0.5)
    assert set(e.value.params()) == {"beta", "kl_warmup", "elbo"}
    with pytest.raises(UserError, match=r"use beta=1 and kl_warmup=0, or elbo='iwae:3'"):  # before training
        check_model(make_elbo("iwae-dreg:3"), vae, kl_warmup=5)
    check_model(make_elbo("iwae:3"), vae, beta=0.5)  # the standard estimator takes weighted latents

    def model(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Bernoulli(0.5))

    def guide(x):
        p = pyro.param("p", torch.tensor(0.3), constraint=dist.constraints.unit_interval)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Bernoulli(p))

    for name in ("stl", "iwae-dreg:2"):
        with pytest.raises(UserError, match=rf"{name} needs reparameterised guide sites; 'z' is not"):
            make_elbo(name).differentiable_loss(model, guide, x)


def test_specs_build_the_classes_and_dreg_takes_no_particles():
    assert isinstance(make_elbo("stl", num_particles=4), STL_ELBO) and make_elbo("stl", 4).vectorize_particles
    dreg = make_elbo("iwae-dreg:7")
    assert isinstance(dreg, IWAE_DReG_ELBO) and dreg.num_particles == 7 and dreg.spec == "iwae-dreg:7"
    with pytest.raises(UserError, match="iwae-dreg:7 draws its own 7 particles; drop num_particles=2"):
        make_elbo("iwae-dreg:7", num_particles=2)
    with pytest.raises(UserError, match="iwae-dreg:K needs its argument"):
        make_elbo("iwae-dreg")
    with pytest.raises(UserError, match="stl takes no argument"):
        make_elbo("stl:2")


def test_frozen_restores_flags_even_on_error():
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(2)
    with pytest.raises(RuntimeError):
        with estimators.frozen([a, b]):
            assert not a.requires_grad
            raise RuntimeError
    assert a.requires_grad and not b.requires_grad


@pytest.mark.parametrize("family", ["diag", "lowrank:1", "full", "iaf"])
def test_the_detached_copy_shortcut_gives_the_replay_s_gradients(family):
    """One latent site with a plain distribution: detaching its tensors stops phi as replaying the
    guide with frozen parameters does (a flow holds modules: it is always replayed)."""
    lg = LinearGaussian(z_dim=2, data_dim=3, weight=torch.tensor([[1.0, 0.3], [0.2, -0.8], [0.5, 0.5]]))
    vae, x = perturb(exact_vae(lg, family if family != "iaf" else "diag")), lg.sample_x(4)
    if family == "iaf":
        vae = VAE(vae.encoder, vae.decoder, prior=vae.prior, likelihood=vae.likelihood,
                  posterior=IAF(2, 1, min_scale=MIN_SCALE)).float()
        x = x.float()
    fn = vae.posterior_at(x)
    assert (estimators.detached(fn) is None) == (family == "iaf")
    grads = []
    for replay in (None, True):
        pyro.set_rng_seed(3)
        plate = pyro.plate("particles", 3, dim=-2)  # around each program, inside the replay (as Pyro's ELBOs do)
        model_trace, guide_trace = estimators.stopped_traces(plate(vae.model), plate(vae.guide), (x,), {}, "stl", 2,
                                                             replay=replay)
        loss = guide_trace.log_prob_sum() - model_trace.log_prob_sum()
        grads.append(_grads(vae, loss))
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], rtol=1e-6, atol=1e-6), name


def test_dreg_is_tucker_et_al_s_formula_written_by_hand(digits):
    """An independent implementation for a diagonal-Normal VAE, on the draws the objective makes:
    encoder gradient of sum_k w~_k^2 log w_k, decoder gradient of sum_k w~_k log w_k, with
    log w_k = log p(x, z_k) - log N(z_k; mu.detach(), sigma.detach()) and z_k = mu + sigma eps_k."""
    vae, x, k = small_vae(), digits.x_train[:5], 6
    pyro.set_rng_seed(11)
    got = _grads(vae, make_elbo(f"iwae-dreg:{k}").differentiable_loss(vae.model, vae.guide, x))
    pyro.set_rng_seed(11)
    with pyro.plate("num_particles_vectorized", k, dim=-2):  # the same draws: the guide samples first
        z = poutine.trace(vae.guide).get_trace(x).nodes["z"]["value"]  # (K, B, Z), a function of mu, sigma
    mu, sigma = vae.posterior.loc_scale(vae.encoder(x))
    log_q = dist.Normal(mu.detach(), sigma.detach()).log_prob(z).sum(-1)  # (K, B)
    log_p = vae.prior().log_prob(z) + vae.likelihood(vae.decoder(z)).log_prob(x)
    log_w = log_p - log_q
    w = torch.softmax(log_w.detach(), 0)
    encoder = dict(vae.encoder.named_parameters())
    decoder = dict(vae.decoder.named_parameters())
    g_enc = torch.autograd.grad(-(w**2 * log_w).sum(), list(encoder.values()), retain_graph=True)
    g_dec = torch.autograd.grad(-(w * log_w).sum(), list(decoder.values()))
    expected = {**{f"encoder.{n}": g for n, g in zip(encoder, g_enc, strict=False)},
                **{f"decoder.{n}": g for n, g in zip(decoder, g_dec, strict=False)}}
    assert set(expected) == set(got)
    for name, g in expected.items():
        assert torch.allclose(got[name], g, rtol=1e-4, atol=1e-5), name

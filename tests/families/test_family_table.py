"""The family table: prior x likelihood x posterior x objective (x model), declared once.

Every combination in TRAIN_CASES is built from its CLI specs exactly as ``pyro-vae train`` builds it,
trains a few steps on ``digits`` and must improve a finite ELBO (read by ``terms.elbo_terms``, the
evaluation path); every combination in ERROR_CASES must be refused with a one-line UserError.
The likelihood families' known answers and the objectives' (IWAE, beta, warm-up) follow.
"""

import math
import re
import warnings

import pyro
import pytest
import torch
from pyro.infer import RenyiELBO, Trace_ELBO, TraceMeanField_ELBO

from pyro_vae.data import load_dataset
from pyro_vae.errors import UserError
from pyro_vae.experiment.build import MODELS, build_elbo, build_model
from pyro_vae.experiment.config import TrainConfig
from pyro_vae.families import likelihoods, posteriors, priors
from pyro_vae.families.likelihoods import ContinuousBernoulli, Laplace, NormalHeteroscedastic, NormalLearnedScale
from pyro_vae.inference import objectives
from pyro_vae.inference.compiled import CompiledStepWarning
from pyro_vae.inference.graph_step import GraphLoss
from pyro_vae.inference.objectives import IWAE_ELBO, kl_scale, make_elbo
from pyro_vae.inference.surrogates import supports
from pyro_vae.inference.traces import elbo_terms, get_traces
from pyro_vae.inference.train import fit
from pyro_vae.models.mixture import GUIDES
from tests.helpers import assert_close, digits_8bit, eager_and_graph, small_vae


@pytest.fixture(scope="module")
def grey():
    return load_dataset("digits", binarize="none")


@pytest.fixture(scope="module")
def grey8(tmp_path_factory):
    """The digits as 8-bit levels k / 255 (uint8 in an npz), for the discretised likelihood."""
    return digits_8bit(tmp_path_factory.mktemp("grey8"))


#            model   prior     likelihood        posterior    objective        data
TRAIN_CASES = [
    ("vae", "normal", "bernoulli", "diag", "meanfield", "binary"),
    ("vae", "mog:3", "bernoulli", "diag", "trace", "binary"),
    ("vae", "mog:3", "bernoulli", "full", "iwae:2", "binary"),
    ("vae", "mog:3", "bernoulli", "delta", "meanfield", "binary"),
    ("vae", "vamp:5", "bernoulli", "diag", "meanfield", "binary"),
    ("vae", "vamp:5", "bernoulli", "full", "trace", "binary"),
    ("vae", "vamp:5", "cbernoulli", "iaf-shared:2", "iwae:3", "grey"),
    ("vae", "normal", "cbernoulli", "iaf:2", "iwae:3", "grey"),
    ("vae", "vamp:5", "bernoulli", "lowrank:1", "jit-trace", "binary"),
    ("vae", "normal", "cbernoulli", "diag", "meanfield", "grey"),
    ("vae", "normal", "cbernoulli", "lowrank:2", "trace", "binary"),
    ("vae", "normal", "normal:0.3", "lowrank:2", "meanfield", "grey"),
    ("vae", "normal", "normal-learned", "full", "meanfield", "grey"),
    ("vae", "normal", "normal-hetero", "diag", "trace", "grey"),
    ("vae", "normal", "laplace", "iaf:1", "trace", "grey"),
    ("vae", "normal", "laplace:0.2", "delta", "trace", "grey"),
    ("vae", "normal", "bernoulli", "lowrank:1", "iwae:4", "binary"),
    ("vae", "normal", "bernoulli", "iaf:2", "jit-meanfield", "binary"),
    ("vae2", "normal", "bernoulli", "diag", "trace", "binary"),
    ("vae2", "mog:3", "cbernoulli", "iaf:1", "iwae:3", "grey"),
    ("vae2", "normal", "normal-hetero", "full", "trace", "grey"),
    ("mixture:3", "normal", "bernoulli", "exact", "em", "binary"),
    ("mixture:3", "normal", "normal-hetero", "exact", "enum", "grey"),
    ("mixture:3", "normal", "bernoulli", "categorical", "enum", "binary"),
    ("mixture:3", "normal", "cbernoulli", "categorical", "trace", "grey"),
    ("vae", "vamp:5", "bernoulli", "iaf-shared:2", "stl", "binary"),
    ("vae2", "mog:3", "bernoulli", "lowrank:1", "iwae-dreg:3", "binary"),
    ("vae", "normal", "bernoulli", "full", "iwae-dreg:4", "binary"),
    ("vae", "normal", "dlogistic", "diag", "meanfield", "grey8"),
    ("vae", "vamp:5", "dlogistic:3", "iaf-shared:1", "iwae:3", "grey8"),
    ("vae2", "normal", "dlogistic:2", "diag", "trace", "grey8"),
    ("mixture:3", "normal", "dlogistic", "categorical", "enum", "grey8"),
]

# The convolutional networks (--arch conv) train every row too, except the mixture with an exact
# posterior, which has no network.
ARCHS = ["mlp", "conv"]

ERROR_CASES = [
    (dict(likelihood="bernoulli"), "grey", r"binary data in \{0, 1\}.*binarize=.*cbernoulli"),
    (dict(posterior="delta", elbo="iwae:3"), "binary", r"iwae:3 .* point mass"),
    (dict(prior="vamp:4", posterior="delta"), "binary", r"vamp:4 .* delta posterior has no density"),
    (dict(model="vae2", elbo="meanfield"), "binary", r"model='vae2' .* another order .* elbo='trace'"),
    (dict(model="vae2", elbo="jit-meanfield"), "binary", r"model='vae2' .* another order"),
    (dict(model="vae2", prior="vamp:4", elbo="trace"), "binary", r"vamp:4 .* no q\(z \| x\)"),
    (dict(elbo="iwae:3", num_particles=2), "binary", r"drop num_particles=2"),
    (dict(posterior="delta", elbo="iwae-dreg:3"), "binary", r"iwae-dreg:3 .* point mass"),
    (dict(elbo="iwae"), "binary", r"iwae:K needs its argument"),
    (dict(elbo="meanfield:2"), "binary", r"meanfield takes no argument"),
    (dict(prior="mog:0"), "binary", r"mog:K needs a positive int"),
    (dict(prior="vamp:2.5"), "binary", r"vamp:K needs a positive int"),
    (dict(posterior="iaf:0"), "binary", r"iaf:N needs a positive int"),
    (dict(posterior="full:3"), "binary", r"full takes no argument"),
    (dict(likelihood="normal-hetero:0"), "grey", r"normal-hetero:FLOOR needs a positive"),
    (dict(likelihood="gamma"), "grey", r"choose one of bernoulli\|cbernoulli\|normal:SCALE"),
    (dict(prior="vamp:4", posterior="iaf:2"), "binary", r"vamp:4 .* pseudo-input\) pair; use iaf-shared:N"),
    (dict(model="mixture:3", elbo="meanfield"), "binary", r"discrete latent, .* use elbo='enum'"),
    (dict(model="mixture:3", elbo="iwae:2"), "binary", r"discrete latent"),
    (dict(model="mixture:3", posterior="categorical", elbo="em"), "binary", r"em needs .* exact posterior"),
    (dict(model="mixture:3", likelihood="laplace", elbo="em"), "grey", r"em needs .* closed-form M-step"),
    (dict(model="mixture:3", posterior="full"), "binary", r"posterior='exact' .* or posterior='categorical'"),
    (dict(model="mixture:3", prior="mog:2"), "binary", r"mixture:3.* drop `prior`"),
    (dict(model="mixture:0"), "binary", r"mixture:K needs a positive int"),
    (dict(elbo="em", num_particles=2), "binary", r"drop num_particles=2"),
    (dict(elbo="enum:2"), "binary", r"enum takes no argument"),
]


def _config(**kw):
    base = dict(dataset="digits", latent_dim=3, hidden=[16], elbo="trace")
    return TrainConfig(**{**base, **kw}).validate()


def _build(data, **kw):
    config = _config(**kw)
    model = build_model(config, data)
    return model, build_elbo(config, model)


def _neg_elbo(model, x):
    pyro.set_rng_seed(123)
    terms = elbo_terms(model.model, model.guide, x)
    assert all(t.shape == (len(x),) and torch.isfinite(t).all() for t in terms.values())
    return -terms["elbo"].mean().item()


def test_the_table_covers_every_family():
    """Every likelihood, posterior and objective; the VAE priors and models (autoencoder-only priors
    and models, which need a point-mass posterior, are tested with the autoencoders)."""
    columns = zip(*TRAIN_CASES, strict=True)
    models, prior_specs, *rest = [{spec.partition(":")[0] for spec in column} for column in columns]
    rest[1] = rest[1] - set(GUIDES)  # the mixture's guides are not posterior families
    for names, registry in zip(rest, (likelihoods.REGISTRY, posteriors.REGISTRY, objectives.REGISTRY), strict=False):
        assert names == set(registry)
    assert {"vae", "vae2"} <= models <= set(MODELS) and {"normal", "mog", "vamp"} <= prior_specs <= set(priors.REGISTRY)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("model, prior, likelihood, posterior, elbo, kind", TRAIN_CASES,
                         ids=["-".join(c[:5]) for c in TRAIN_CASES])
def test_family_trains(model, prior, likelihood, posterior, elbo, kind, arch, digits, grey, grey8):
    if arch == "conv" and posterior == "exact":
        pytest.skip("a mixture with the exact posterior has no network")
    data = {"binary": digits, "grey": grey, "grey8": grey8}[kind]
    nets = dict(arch="conv", channels=[8, 16]) if arch == "conv" else {}
    vae, objective = _build(data, model=model, prior=prior, likelihood=likelihood, posterior=posterior, elbo=elbo,
                            **nets)
    x_eval = data.x_test[:200]
    before = _neg_elbo(vae, x_eval)
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(12):
        xb = data.x_train[torch.randint(0, data.num_train, (64,), generator=gen)]
        optimizer.zero_grad()
        loss = objective.loss_and_grads(vae.model, vae.guide, xb, num_data=data.num_train)
        assert math.isfinite(loss)
        optimizer.step()
    after = _neg_elbo(vae, x_eval)
    assert after < before - 1.0, (before, after)


@pytest.mark.parametrize("model, prior, likelihood, posterior, elbo, kind", TRAIN_CASES,
                         ids=["-".join(c[:5]) for c in TRAIN_CASES])
def test_family_step_as_a_graph_equals_eager_pyro(model, prior, likelihood, posterior, elbo, kind, digits, grey,
                                                  grey8):
    """The training step ``fit`` takes by default, captured as a graph: its loss and every parameter's
    gradient equal eager Pyro's on the same draws (captured without inductor here; tests/inference/
    test_compiled.py compiles). Objectives without a graph form (enum, em, jit-*) step eagerly."""
    data = {"binary": digits, "grey": grey, "grey8": grey8}[kind]
    vae, objective = _build(data, model=model, prior=prior, likelihood=likelihood, posterior=posterior, elbo=elbo)
    x = data.x_train[:40].round() if kind == "binary" else data.x_train[:40]
    if not supports(objective):
        assert elbo.partition(":")[0] in ("enum", "em", "jit-trace", "jit-meanfield")
        assert not GraphLoss(vae, objective, list(vae.parameters()), data.num_train).active
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompiledStepWarning)  # captured, not fallen back to eager
        eager, ours, graph = eager_and_graph(vae, objective, x, data.num_train)
    assert graph.routes == ["captured"]
    assert_close(eager, ours)


@pytest.mark.parametrize("overrides, kind, message", ERROR_CASES, ids=[str(c[0]) for c in ERROR_CASES])
def test_nonsensical_combinations_are_refused(overrides, kind, message, digits, grey):
    with pytest.raises(UserError, match=message) as e:
        _build(digits if kind == "binary" else grey, **overrides)
    assert "\n" not in str(e.value)


def test_fit_with_vamp_cbernoulli_iaf_iwae_and_warmup(grey, tmp_path):
    """The issue's headline combination through ``fit``: finite history, test ELBO improves."""
    from pyro_vae.experiment.runs import RunDir

    config = _config(prior="vamp:5", likelihood="cbernoulli", posterior="iaf-shared:2", elbo="iwae:3", binarize="none")
    vae = build_model(config, grey)
    run = RunDir(str(tmp_path / "run"))
    run.create(config)
    history = fit(vae, grey, build_elbo(config, vae), epochs=2, batch_size=256, lr=1e-2, run=run, quiet=True,
                  kl_warmup=2)
    assert all(math.isfinite(r["test_elbo"]) for r in history)
    assert history[1]["test_elbo"] > history[0]["test_elbo"]


# --- likelihood families: known answers, supports, shapes ----------------------------------------


def test_continuous_bernoulli_is_the_normalised_cross_entropy():
    logits, x = torch.randn(4, 6), torch.rand(4, 6)
    lam = torch.sigmoid(logits)
    log_norm = torch.log(2 * torch.atanh(1 - 2 * lam) / (1 - 2 * lam))
    expected = (log_norm + x * lam.log() + (1 - x) * (1 - lam).log()).sum(-1)
    assert torch.allclose(ContinuousBernoulli()(logits).log_prob(x), expected, atol=1e-4)


def test_continuous_bernoulli_density_integrates_to_one_and_mean_is_its_mean():
    logits = torch.tensor([-3.0, -0.5, 0.0, 0.7, 4.0])
    grid = torch.linspace(0, 1, 20001, dtype=torch.float64).unsqueeze(-1)  # (G, 1)
    d = torch.distributions.ContinuousBernoulli(logits=logits.double())
    density = d.log_prob(grid).exp()  # (G, 5)
    assert torch.allclose(torch.trapezoid(density, grid, dim=0), torch.ones(5, dtype=torch.float64), atol=1e-6)
    mean = torch.trapezoid(density * grid, grid, dim=0)
    assert torch.allclose(ContinuousBernoulli().mean(logits).double(), mean, atol=1e-4)
    assert not torch.allclose(torch.sigmoid(logits).double(), mean, atol=1e-2)  # the mean is not sigmoid


def test_learned_pixel_scale_normal():
    lik = NormalLearnedScale(data_dim=5)
    loc, x = torch.rand(3, 5), torch.rand(3, 5)
    assert torch.allclose(lik.scale(), torch.full((5,), 0.1), atol=1e-5)
    expected = torch.distributions.Normal(loc, 0.1).log_prob(x).sum(-1)
    assert torch.allclose(lik(loc).log_prob(x), expected, atol=1e-4)
    assert [n for n, _ in lik.named_parameters()] == ["scale.raw"]  # learned, registered with the model


def test_heteroscedastic_normal_reads_means_and_floored_scales():
    lik = NormalHeteroscedastic(min_scale=0.05)
    assert lik.num_params(7) == 14
    out = torch.cat([torch.rand(2, 7), torch.full((2, 7), -1e4)], -1)  # rho -> -inf: the floor
    d = lik(out)
    assert d.batch_shape == (2,) and d.event_shape == (7,)
    assert torch.allclose(d.base_dist.scale, torch.full((2, 7), 0.05))
    assert torch.equal(lik.mean(out), out[:, :7])


def test_laplace_is_l1_error():
    loc, x, b = torch.rand(3, 5), torch.rand(3, 5), 0.2
    expected = (-(x - loc).abs() / b - math.log(2 * b)).sum(-1)
    assert torch.allclose(Laplace(b)(loc).log_prob(x), expected, atol=1e-5)
    learned = Laplace(None, data_dim=5)
    assert learned.scale().shape == (5,) and learned.spec() == "laplace"


@pytest.mark.parametrize("spec, needs_binary, needs_unit", [
    ("bernoulli", True, True), ("cbernoulli", False, True), ("normal:0.1", False, False),
    ("normal-learned", False, False), ("normal-hetero", False, False), ("laplace", False, False)])
def test_each_likelihood_declares_its_support(spec, needs_binary, needs_unit):
    from pyro_vae.specs import Context, build

    lik = build(likelihoods.REGISTRY, spec, "likelihood", Context(z_dim=2, data_dim=3))
    lik.check_data(torch.tensor([[0.0, 1.0, 1.0]]))
    for data, refused in ((torch.tensor([[0.0, 0.5, 1.0]]), needs_binary),
                          (torch.tensor([[-0.5, 0.5, 1.5]]), needs_unit)):
        if refused:
            with pytest.raises(UserError, match=re.escape(lik.support_hint)):
                lik.check_data(data)
        else:
            lik.check_data(data)


@pytest.mark.parametrize("spec", [s.usage.split("[")[0].replace("SCALE", "0.3") for s in likelihoods.REGISTRY.values()])
def test_likelihood_shapes_with_particles(spec):
    from pyro_vae.specs import Context, build

    lik = build(likelihoods.REGISTRY, spec, "likelihood", Context(z_dim=2, data_dim=5))
    out = torch.randn(4, 3, lik.num_params(5))  # (P, B, D_out)
    d = lik(out)
    assert d.batch_shape == (4, 3) and d.event_shape == (5,)
    assert torch.isfinite(d.log_prob(torch.rand(4, 3, 5).round())).all()
    assert lik.mean(out).shape == (4, 3, 5)


# --- objectives: iwae:K ---------------------------------------------------------------------------


def _hand_log_weights(vae, x, k, seed):
    """log p(x, z_k) - log q(z_k | x), (K, B), from the same draws the ELBO makes, via fn.log_prob only."""
    pyro.set_rng_seed(seed)
    with pyro.plate("num_particles_vectorized", k, dim=-2):
        model_trace, guide_trace = get_traces(vae.model, vae.guide, x)
    log_w = model_trace.nodes["x"]["fn"].log_prob(x)
    return log_w + model_trace.nodes["z"]["fn"].log_prob(guide_trace.nodes["z"]["value"]) \
        - guide_trace.nodes["z"]["fn"].log_prob(guide_trace.nodes["z"]["value"])


def test_iwae_is_the_per_point_log_mean_exp_of_the_weights(digits):
    vae, x, k = small_vae(), digits.x_train[:6], 7
    log_w = _hand_log_weights(vae, x, k, seed=4)  # (K, B)
    expected = (torch.logsumexp(log_w, 0) - math.log(k)).sum()  # sum_n log mean_k w_kn
    pyro.set_rng_seed(4)
    assert -make_elbo("iwae:7").loss(vae.model, vae.guide, x) == pytest.approx(expected.item(), rel=1e-5)
    pyro.set_rng_seed(4)  # Pyro's RenyiELBO agrees when nothing is subsampled
    renyi = RenyiELBO(alpha=0, num_particles=k, vectorize_particles=True, max_plate_nesting=1)
    assert -renyi.loss(vae.model, vae.guide, x) == pytest.approx(expected.item(), rel=1e-5)
    # and a log-mean-exp over the whole batch (one weight per particle) would be another number
    assert abs(expected - (torch.logsumexp(log_w.sum(1), 0) - math.log(k))) > 1.0


def test_iwae_minibatch_scale_is_applied_after_the_log_mean_exp(digits):
    """(N/B) sum_n L_K(x_n): unbiased for the full-data bound. Stock RenyiELBO tempers the weights instead."""
    vae, x, k, n = small_vae(), digits.x_train[:6], 5, 60
    log_w = _hand_log_weights(vae, x, k, seed=2)
    expected = n / 6 * (torch.logsumexp(log_w, 0) - math.log(k)).sum()
    pyro.set_rng_seed(2)
    assert -make_elbo("iwae:5").loss(vae.model, vae.guide, x, num_data=n) == pytest.approx(expected.item(), rel=1e-5)
    pyro.set_rng_seed(2)
    stock = -RenyiELBO(alpha=0, num_particles=k, vectorize_particles=True, max_plate_nesting=1).loss(
        vae.model, vae.guide, x, num_data=n)
    tempered = (torch.logsumexp(n / 6 * log_w, 0) - math.log(k)).sum()
    assert stock == pytest.approx(tempered.item(), rel=1e-5) and abs(stock - expected.item()) > 1.0


def test_iwae_gradient_is_the_gradient_of_the_bound(digits):
    vae, x = small_vae(), digits.x_train[:4]
    pyro.set_rng_seed(9)
    IWAE_ELBO(num_particles=3).loss_and_grads(vae.model, vae.guide, x)
    grads = [p.grad.clone() for p in vae.parameters()]
    vae.zero_grad()
    pyro.set_rng_seed(9)
    log_w = _hand_log_weights(vae, x, 3, seed=9)
    (-(torch.logsumexp(log_w, 0) - math.log(3)).sum()).backward()
    assert all(torch.allclose(a, p.grad, atol=1e-5) for a, p in zip(grads, vae.parameters(), strict=False))


def test_iwae_1_is_the_elbo(digits):
    vae, x = small_vae(), digits.x_train[:8]
    pyro.set_rng_seed(1)
    a = make_elbo("iwae:1").loss(vae.model, vae.guide, x)
    pyro.set_rng_seed(1)
    assert a == pytest.approx(Trace_ELBO().loss(vae.model, vae.guide, x), rel=1e-6)  # same draw, same number
    iwae = torch.tensor([make_elbo("iwae:1").loss(vae.model, vae.guide, x) for _ in range(200)])
    mf = torch.tensor([TraceMeanField_ELBO().loss(vae.model, vae.guide, x) for _ in range(200)])
    assert abs(iwae.mean() - mf.mean()) < 4 * (iwae.var() / 200 + mf.var() / 200).sqrt()  # in expectation


def test_iwae_bound_rises_with_k(digits):
    vae, x = small_vae(), digits.x_train[:32]
    means = [torch.tensor([-make_elbo(f"iwae:{k}").loss(vae.model, vae.guide, x) for _ in range(20)]).mean()
             for k in (1, 10, 100)]
    assert means[0] < means[1] < means[2]


# --- beta and KL warm-up --------------------------------------------------------------------------


def test_beta_scales_the_analytic_kl_in_meanfield(digits):
    vae, x, beta = small_vae(), digits.x_train[:7], 0.3
    mu, sigma = vae.posterior.loc_scale(vae.encoder(x))
    kl = -0.5 * (1 + torch.log(sigma**2) - mu**2 - sigma**2).sum(-1)  # (B,)
    pyro.set_rng_seed(3)
    loss = TraceMeanField_ELBO().loss(vae.model, vae.guide, x, kl_scale=beta)
    pyro.set_rng_seed(3)
    model_trace, guide_trace = get_traces(vae.model, vae.guide, x, kl_scale=beta)
    rec = model_trace.nodes["x"]["fn"].log_prob(x)
    assert loss == pytest.approx(-(rec - beta * kl).sum().item(), rel=1e-5)
    assert model_trace.nodes["z"]["scale"] == beta and guide_trace.nodes["z"]["scale"] == beta
    assert model_trace.nodes["x"]["scale"] == 1.0


def test_kl_warmup_schedule():
    assert [kl_scale(e, 1.0, 4) for e in (1, 2, 3, 4, 5)] == [0.25, 0.5, 0.75, None, None]
    assert [kl_scale(e, 2.0, 2) for e in (1, 2, 9)] == [None, 2.0, 2.0]  # weight 1 needs no scale
    assert kl_scale(1, 0.5) == 0.5 and kl_scale(7) is None
    with pytest.raises(UserError, match="beta"):
        kl_scale(1, 0.0)


def test_warmup_resume_is_exact_with_jit(digits, tmp_path, monkeypatch):
    """jit-meanfield + warm-up: one compile per distinct weight, and resume equals an uninterrupted run."""
    from pyro_vae.experiment.runs import RunDir

    compiles = []
    original = torch.jit.trace
    monkeypatch.setattr(torch.jit, "trace", lambda *a, **k: compiles.append(1) or original(*a, **k))
    config = _config(elbo="jit-meanfield", kl_warmup=2)

    def run_fit(path, epochs, resume=False):
        pyro.clear_param_store()
        torch.manual_seed(0)
        vae = build_model(config, digits)
        run = RunDir(str(path))
        if not resume:
            run.create(config)
        fit(vae, digits, build_elbo(config, vae), epochs=epochs, batch_size=512, lr=1e-2, run=run, quiet=True,
            resume=resume, kl_warmup=2)
        return vae

    straight = run_fit(tmp_path / "a", 3)
    assert len(compiles) == 2  # epoch 1 at weight 0.5; epochs 2 and 3 at weight 1 (no kl_scale at all)
    run_fit(tmp_path / "b", 1)
    resumed = run_fit(tmp_path / "b", 3, resume=True)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=False):
        assert torch.equal(a, b)

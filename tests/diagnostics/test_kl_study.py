"""Sampled against analytic KL: audit, fallback warning, Monte-Carlo check, estimator variance, CLI."""

import json
import math
import warnings

import matplotlib

matplotlib.use("Agg")

import pyro  # noqa: E402
import pyro.distributions as dist  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from torch.distributions import register_kl  # noqa: E402

from pyro_vae import MLP, VAE, Bernoulli, DiagonalNormal, UserError, fit, make_elbo  # noqa: E402
from pyro_vae.cli import main  # noqa: E402
from pyro_vae.diagnostics.kl_study import (  # noqa: E402
    estimator_variance,
    expected_abs_t,
    gradient_variance,
    kl_check,
    parameter_groups,
    summarize_kl_check,
)
from pyro_vae.inference.kl_audit import SampledKLWarning, kl_audit, latent_order  # noqa: E402
from pyro_vae.plots import learning_curves_figure, variance_ratio_figure  # noqa: E402
from tests.helpers import small_vae  # noqa: E402

# --- families without a registered KL against a diagonal Normal (built here, not from the package) --

class MixturePrior(nn.Module):
    """p(z) = sum_k pi_k N(z; mu_k, I): learnable, and no KL(Normal || mixture) is registered."""

    def __init__(self, z_dim, k=3):
        super().__init__()
        self.z_dim = z_dim
        self.logits = nn.Parameter(torch.zeros(k))
        self.loc = nn.Parameter(torch.randn(k, z_dim))

    def forward(self):
        components = dist.Normal(self.loc, torch.ones_like(self.loc)).to_event(1)
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits), components)


class StudentTPrior(nn.Module):
    def __init__(self, z_dim):
        super().__init__()
        self.z_dim = z_dim

    def forward(self):
        return dist.StudentT(3.0, torch.zeros(self.z_dim), torch.ones(self.z_dim)).to_event(1)


def vae_with_prior(make_prior, data_dim=64, hidden=16, seed=0, z_dim=3):
    torch.manual_seed(seed)
    prior = make_prior(z_dim)
    post, lik = DiagonalNormal(), Bernoulli()
    return VAE(MLP(data_dim, [hidden], post.num_params(prior.z_dim)), MLP(prior.z_dim, [hidden], data_dim),
               prior=prior, likelihood=lik, posterior=post)


# --- audit and the fallback warning ---------------------------------------------------------------

def test_audit_says_analytic_for_diagonal_normal_against_standard_normal(digits):
    audit = kl_audit(small_vae().model, small_vae().guide, digits.x_test[:5])
    assert audit == {"z": {"guide": "Independent(Normal, 1)", "prior": "Independent(Normal, 1)", "kl": "analytic"}}


@pytest.mark.parametrize("prior, name", [(MixturePrior, "MixtureSameFamily(Categorical, Independent(Normal, 1))"),
                                         (StudentTPrior, "Independent(StudentT, 1)")])
def test_audit_says_sampled_without_a_registered_kl(prior, name, digits):
    vae = vae_with_prior(prior)
    assert kl_audit(vae.model, vae.guide, digits.x_test[:5]) == {
        "z": {"guide": "Independent(Normal, 1)", "prior": name, "kl": "sampled"}}


def _fit_recording(vae, digits, objective, epochs=1):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # the package's own "always" filter must make repeats show
        warnings.filterwarnings("always", category=SampledKLWarning)
        fit(vae, digits, make_elbo(objective), epochs=epochs, batch_size=500, quiet=True)
    return [w for w in caught if issubclass(w.category, SampledKLWarning)]


def test_meanfield_warns_once_per_fit_and_then_samples_exactly_like_trace(digits):
    mixture = vae_with_prior(MixturePrior)
    first = _fit_recording(mixture, digits, "meanfield", epochs=2)
    assert len(first) == 1
    message = str(first[0].message)
    assert "site 'z'" in message and "Independent(Normal, 1)" in message and "MixtureSameFamily" in message
    assert len(_fit_recording(mixture, digits, "meanfield")) == 1  # a second fit warns again, once
    assert _fit_recording(vae_with_prior(MixturePrior), digits, "trace") == []  # trace samples by design
    assert _fit_recording(small_vae(), digits, "meanfield") == []  # analytic pair: nothing to say

    # The audit leaves the random stream alone, and meanfield's fallback is Trace_ELBO's estimator:
    # the same seeds give the same parameters.
    a, b = vae_with_prior(MixturePrior, seed=1), vae_with_prior(MixturePrior, seed=1)
    _fit_recording(a, digits, "meanfield")
    _fit_recording(b, digits, "trace")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=False):
        assert torch.allclose(pa, pb, atol=1e-5), name


# --- Monte-Carlo KL against analytic ------------------------------------------------------------

class BiasedNormal(dist.Normal):
    """A Normal whose registered KL is wrong by 0.05 nats per dimension: the check must notice."""


@register_kl(BiasedNormal, dist.Normal)
def _biased_kl(q, p):
    return torch.distributions.kl._kl_normal_normal(q, p) + 0.05


def gaussian_pair(num_points=2000, z_dim=4, guide_family=dist.Normal, seed=0):
    """q(z | x_n) = N(mu_n, diag sigma_n^2), p(z) = N(m, diag s^2), with the closed-form KL."""
    g = torch.Generator().manual_seed(seed)
    mu, sigma = torch.randn(num_points, z_dim, generator=g), 0.1 + 0.9 * torch.rand(num_points, z_dim, generator=g)
    m, s = 0.5 * torch.randn(z_dim, generator=g), 0.5 + torch.rand(z_dim, generator=g)

    def model(x):
        with pyro.plate("data", x.shape[0], dim=-1):
            pyro.sample("z", dist.Normal(m, s).to_event(1))

    def guide(x):
        with pyro.plate("data", x.shape[0], dim=-1):
            pyro.sample("z", guide_family(mu, sigma).to_event(1))

    closed = (torch.log(s / sigma) + (sigma ** 2 + (mu - m) ** 2) / (2 * s ** 2) - 0.5).sum(-1)  # (B,)
    return model, guide, torch.zeros(num_points, 1), closed


def test_expected_abs_t_has_its_known_values():
    assert expected_abs_t(2) == pytest.approx(math.sqrt(2))  # E|T_2| = sqrt(2)
    assert expected_abs_t(1e6) == pytest.approx(math.sqrt(2 / math.pi), rel=1e-5)


def test_kl_check_z_scores_are_standard_normal_like_and_analytic_is_the_closed_form():
    model, guide, x, closed = gaussian_pair()
    n, num_samples = x.shape[0], 100
    check = kl_check(model, guide, x, num_samples=num_samples)
    site = check["z"]
    assert site["kl"] == "analytic"
    assert torch.allclose(site["analytic"], closed.double(), rtol=1e-5, atol=1e-5)
    summary = summarize_kl_check(check, num_samples)
    # For n independent z ~ t_99: E|z| = 0.804 and sd(|z|) = sqrt(1 - 2/pi) ~ 0.60, so mean |z| over
    # n = 2000 points has standard error 0.0135; allow 4 of them. Likewise P(|z| > 1.96) ~ 0.05 +- 0.005.
    assert summary["expected_mean_abs_z"] == pytest.approx(0.804, abs=1e-3)
    assert abs(summary["mean_abs_z"] - summary["expected_mean_abs_z"]) < 4 * summary["mean_abs_z_se"]
    assert abs(summary["fraction_abs_z_above_1.96"] - 0.05) < 4 * math.sqrt(0.05 * 0.95 / n)
    assert abs(summary["mean_z"]) < 4 / math.sqrt(n)
    assert summary["sites"]["z"]["num_points"] == n


def test_kl_check_catches_a_wrong_analytic_kl():
    model, guide, x, closed = gaussian_pair(num_points=500, guide_family=BiasedNormal)
    check = kl_check(model, guide, x, num_samples=100)
    assert torch.allclose(check["z"]["analytic"], closed.double() + 0.2, atol=1e-4)  # 4 dims x 0.05
    summary = summarize_kl_check(check, 100)
    assert summary["mean_z"] < -0.5
    assert summary["mean_abs_z"] > summary["expected_mean_abs_z"] + 10 * summary["mean_abs_z_se"]


def _two_layer(guide_order):
    """z1 ~ N(0, I), z2 ~ N(z1, 0.5^2 I); guide top-down (z1 then z2) or bottom-up (z2 then z1)."""
    first, second = guide_order

    def model(x):
        with pyro.plate("data", x.shape[0], dim=-1):
            z1 = pyro.sample("z1", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
            pyro.sample("z2", dist.Normal(z1, 0.5).to_event(1))

    def guide(x):
        with pyro.plate("data", x.shape[0], dim=-1):
            z = pyro.sample(first, dist.Normal(x, 0.7).to_event(1))
            pyro.sample(second, dist.Normal(0.8 * z, 0.4).to_event(1))

    return model, guide


def test_kl_check_is_calibrated_for_conditional_priors_and_flags_a_bottom_up_guide():
    x = torch.randn(2000, 2, generator=torch.Generator().manual_seed(1))
    model, guide = _two_layer(("z1", "z2"))  # KL(q(z2|z1) || p(z2|z1)) varies with z1: averaged per draw
    assert latent_order(model, guide, x[:3])["same"]
    summary = summarize_kl_check(kl_check(model, guide, x, num_samples=100), 100)
    for site in ("z1", "z2"):
        z = summary["sites"][site]
        assert z["kl"] == "analytic" and abs(z["mean_abs_z"] - z["expected_mean_abs_z"]) < 4 * z["mean_abs_z_se"], site
    model, guide = _two_layer(("z2", "z1"))  # Pyro's mean-field condition fails: z2's analytic KL is biased
    assert latent_order(model, guide, x[:3]) == {"model": ["z1", "z2"], "guide": ["z2", "z1"], "same": False}
    summary = summarize_kl_check(kl_check(model, guide, x[:500], num_samples=100), 100)
    assert summary["sites"]["z2"]["mean_abs_z"] > 5


def test_kl_check_reports_sampled_sites_without_z(digits):
    vae = vae_with_prior(StudentTPrior)
    summary = summarize_kl_check(kl_check(vae.model, vae.guide, digits.x_test[:20], num_samples=10), 10)
    assert summary["mean_abs_z"] is None and summary["sites"]["z"]["kl"] == "sampled"
    assert summary["sites"]["z"]["mc_se_mean"] > 0


# --- estimator variance --------------------------------------------------------------------------

def test_parameter_groups_follow_submodules():
    assert set(parameter_groups(small_vae())) == {"encoder", "decoder"}  # N(0, I) and Bernoulli: no params
    groups = parameter_groups(vae_with_prior(MixturePrior))
    assert set(groups) == {"encoder", "decoder", "prior"} and len(groups["prior"]) == 2


def test_gradient_variance_matches_a_direct_computation(digits):
    vae, x, repeats = vae_with_prior(MixturePrior), digits.x_train[:32], 12
    groups = parameter_groups(vae)
    got = gradient_variance(vae.model, vae.guide, x, make_elbo("trace"), groups, repeats=repeats, seed=5)
    grads, values = {g: [] for g in groups}, []
    for r in range(repeats):  # independent implementation: store every gradient, then torch.var
        pyro.set_rng_seed(5 + r)
        vae.zero_grad()
        values.append(-make_elbo("trace").loss_and_grads(vae.model, vae.guide, x) / 32)
        for g, params in groups.items():
            grads[g].append(-torch.cat([p.grad.reshape(-1) for p in params]).double() / 32)
    v = torch.tensor(values, dtype=torch.float64)
    assert got["elbo"]["variance"] == pytest.approx(v.var().item(), rel=1e-4)
    assert got["elbo"]["variance_per_point"] == pytest.approx(32 * v.var().item(), rel=1e-4)
    for g in groups:
        stack = torch.stack(grads[g])  # (R, n)
        mean, sd = stack.mean(0), stack.std(0)
        assert got["groups"][g]["total_variance"] == pytest.approx(stack.var(0).sum().item(), rel=1e-4)
        assert got["groups"][g]["norm_of_mean_grad"] == pytest.approx(mean.norm().item(), rel=1e-4)
        assert got["groups"][g]["mean_grad_norm"] == pytest.approx(stack.norm(dim=1).mean().item(), rel=1e-4)
        assert got["groups"][g]["snr"] == pytest.approx((mean.abs()[sd > 0] / sd[sd > 0]).mean().item(), rel=1e-4)
        assert got["groups"][g]["snr_median"] == pytest.approx((mean.abs()[sd > 0] / sd[sd > 0]).median().item(),
                                                               rel=1e-4)


@pytest.fixture(scope="module")
def trained(digits):
    pyro.set_rng_seed(0)
    vae = small_vae(hidden=(64,), z_dim=4)
    fit(vae, digits, make_elbo("meanfield"), epochs=12, batch_size=64, lr=3e-3, quiet=True)
    return vae


def test_analytic_kl_lowers_encoder_gradient_variance_on_a_trained_model(trained, digits):
    x = digits.x_train[:128]
    result = estimator_variance(trained, x, num_particles=(1,), repeats=40)
    ratio = result["ratio"]["1"]
    # Measured on this model: encoder ratio ~0.57 (0.90 on the 784-400-20 MNIST demo run).
    assert ratio["encoder"] < 0.85, ratio
    # Paired draws: the decoder only sees log p(x | z) at the same z under both objectives.
    assert ratio["decoder"] == pytest.approx(1.0, abs=1e-6)
    # Both are unbiased estimates of one ELBO (their spreads differ; see the report).
    t, m = (result["objectives"][k]["1"]["elbo"] for k in ("trace", "meanfield"))
    assert abs(t["mean"] - m["mean"]) < 4 * (t["se"] + m["se"])
    # Without pairing the decoder's noise no longer cancels out of the ratio.
    groups = parameter_groups(trained)
    a = gradient_variance(trained.model, trained.guide, x, make_elbo("trace"), groups, repeats=20, seed=0)
    b = gradient_variance(trained.model, trained.guide, x, make_elbo("meanfield"), groups, repeats=20, seed=1000)
    assert b["groups"]["decoder"]["total_variance"] != pytest.approx(a["groups"]["decoder"]["total_variance"], rel=1e-3)


# --- figures and the command ---------------------------------------------------------------------

def test_figures_draw_the_data_given():
    fig = variance_ratio_figure({"1": {"elbo": 1.3, "encoder": 0.9, "decoder": 1.0},
                                 "4": {"elbo": 1.9, "encoder": 0.9}})
    (ax,) = fig.axes
    assert len(ax.patches) == 6 and [t.get_text() for t in ax.get_xticklabels()][0] == "ELBO value"
    fig = learning_curves_figure({"trace": {"0": [-90, -80], "1": [-91, -81]}, "meanfield": {"0": [-89, -79]}})
    (ax,) = fig.axes
    assert len(ax.lines) == 3 + 2  # one per seed plus one mean per objective
    assert list(ax.lines[2].get_ydata()) == [-90.5, -80.5]


FAST = ["--dataset", "digits", "--hidden", "32", "--latent-dim", "4", "--batch-size", "200", "--quiet"]


def test_compare_kl_command_writes_json_and_figures(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *FAST, "--epochs", "2", "--out", str(out)]) == 0
    args = ["compare-kl", str(out), "--repeats", "5", "--num-particles", "1", "2", "--kl-samples", "10",
            "--kl-points", "50", "--outcome-epochs", "2", "--seeds", "0", "1", "--iwae-samples", "5",
            "--snr-k", "1", "3", "--snr-batch-size", "8"]
    assert main(args) == 0
    result = json.loads((out / "kl_comparison.json").read_text())
    assert result["audit"]["z"]["kl"] == "analytic" and result["kl_check"]["mean_abs_z"] > 0
    assert set(result["variance"]["objectives"]) == {"trace", "meanfield"}
    assert set(result["variance"]["objectives"]["trace"]["2"]["groups"]) == {"encoder", "decoder"}
    assert set(result["variance"]["ratio"]["1"]) == {"elbo", "encoder", "decoder"}
    outcome = result["outcome"]
    assert [(r["objective"], r["seed"]) for r in outcome["runs"]] == [
        ("trace", 0), ("meanfield", 0), ("trace", 1), ("meanfield", 1)]
    # The outcome trains the run's own configuration: meanfield, seed 0, 2 epochs is the run itself.
    summary = json.loads((out / "summary.json").read_text())
    assert outcome["runs"][1]["test_elbo"] == pytest.approx(summary["test_elbo"], abs=1e-6)
    assert len(outcome["curves"]["trace"]["1"]) == 2
    if outcome["iwae_samples"] is not None:  # pyro_vae.bounds present: IWAE-5 is above the ELBO, up to noise
        assert all(r["test_iwae"] > r["test_elbo"] - 1.0 for r in outcome["runs"])
    for name in result["figures"].values():
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert set(result["figures"]) == {"variance", "outcome", "snr"}
    assert "meanfield" in capsys.readouterr().out  # the outcome table
    # the estimator study: the five default objectives, trace and meanfield reused from `variance`
    study = result["estimators"]
    assert study["specs"] == ["trace", "meanfield", "stl", "iwae:5", "iwae-dreg:5"] and study["skipped"] == {}
    assert set(study["results"]) == set(study["specs"])
    assert study["results"]["trace"] == result["variance"]["objectives"]["trace"]["1"]
    decoder = {k: r["groups"]["decoder"]["total_variance"] for k, r in study["results"].items()}
    assert decoder["stl"] == pytest.approx(decoder["trace"], rel=1e-6)  # paired: same z, same decoder gradient
    assert decoder["iwae-dreg:5"] == pytest.approx(decoder["iwae:5"], rel=1e-6)
    curve = result["snr_curve"]
    assert curve["ks"] == [1, 3] and curve["batch_size"] == 8 and set(curve["snr"]) == {"iwae", "iwae-dreg"}
    assert curve["snr"]["iwae"]["decoder"] == pytest.approx(curve["snr"]["iwae-dreg"]["decoder"], rel=1e-6)
    assert curve["snr"]["iwae"]["encoder"][0] == pytest.approx(
        curve["results"]["iwae:1"]["groups"]["encoder"]["snr"])


def test_compare_kl_bad_input_is_one_line(tmp_path, capsys):
    def error(*args):
        assert main(["compare-kl", *map(str, args)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("pyro-vae: error: ") and "\n" not in err, err
        return err

    assert "does not exist" in error(tmp_path / "nothing")
    out = tmp_path / "run"
    main(["train", *FAST, "--epochs", "1", "--out", str(out)])
    assert "--outcome-epochs" in error(out, "--seeds", 0, 1)
    assert "--repeats must be" in error(out, "--repeats", 1)
    assert "--estimators takes objectives without JIT" in error(out, "--repeats", 2, "--estimators", "jit-trace")
    assert "unknown objective 'bogus'" in error(out, "--repeats", 2, "--estimators", "trace,bogus")
    assert "--snr-k must be" in error(out, "--repeats", 2, "--snr-k", -5)
    assert not (out / "kl_comparison.json").exists()


# --- gradient estimators: stl, iwae-dreg:K and the SNR curve (pyro_vae.diagnostics.estimator_study) --------

def test_estimator_study_pairs_draws_and_skips_what_cannot_run(digits):
    from pyro_vae import Autoencoder, Delta, Flat
    from pyro_vae.diagnostics.estimator_study import estimator_study, snr_curve, snr_floor

    vae, x = small_vae(), digits.x_train[:16]
    study = estimator_study(vae, x, ["trace", "stl", "iwae:1", "iwae-dreg:1"], repeats=6, seed=3)
    r = study["results"]
    # iwae:1 is trace and iwae-dreg:1 is stl, draw for draw; stl changes the encoder's gradient only
    for a, b in (("trace", "iwae:1"), ("stl", "iwae-dreg:1")):
        for g in ("encoder", "decoder"):
            assert r[a]["groups"][g]["total_variance"] == pytest.approx(r[b]["groups"][g]["total_variance"], rel=1e-5)
    assert r["stl"]["groups"]["decoder"]["snr"] == pytest.approx(r["trace"]["groups"]["decoder"]["snr"], rel=1e-6)
    assert r["stl"]["groups"]["encoder"]["total_variance"] != pytest.approx(
        r["trace"]["groups"]["encoder"]["total_variance"], rel=1e-3)
    assert r["stl"]["elbo"]["mean"] == pytest.approx(r["trace"]["elbo"]["mean"], rel=1e-6)  # same values

    torch.manual_seed(0)
    ae = Autoencoder(MLP(64, [16], 3), MLP(3, [16], 64), prior=Flat(3), likelihood=Bernoulli(), posterior=Delta())
    study = estimator_study(ae, x, ["trace", "iwae-dreg:2"], repeats=3)
    assert list(study["results"]) == ["trace"] and "point mass" in study["skipped"]["iwae-dreg:2"]
    with pytest.raises(UserError, match="the SNR curve needs iwae:1, which cannot run here"):
        snr_curve(ae, x, ks=(1,), repeats=3)
    assert snr_floor(100) == pytest.approx(0.0798, abs=1e-4)

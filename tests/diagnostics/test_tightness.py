"""Known answers for the dataset report (pyro_vae.diagnostics.tightness), the inference-gap decomposition
(pyro_vae.inference_gap) and the `pyro-vae evaluate` command."""

import json
import math

import pytest
import torch
from torch.distributions import MultivariateNormal, kl_divergence

from pyro_vae.cli import main
from pyro_vae.diagnostics.inference_gap import free_guide, inference_gaps
from pyro_vae.diagnostics.tightness import dataset_statistics, point_statistics, summarise, verdict
from pyro_vae.experiment.runs import json_safe
from tests.linear_gaussian import LinearGaussian

LG = LinearGaussian()
X = LG.sample_x(6)


def test_point_statistics_match_the_closed_forms():
    shift, factor = 0.3, 1.2
    vae = LG.vae(shift, factor)
    stats = point_statistics(vae.model, vae.guide, X, 20000, ks=(1, 5, 50))
    q = LG.q(X, shift, factor)
    prior = MultivariateNormal(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
    assert torch.allclose(stats["kl"], kl_divergence(q, prior), atol=1e-10)  # analytic: Normal/Normal is registered
    # E_q log N(x; W z + b, s^2 I) = -D/2 log(2 pi s^2) - (|x - W mu - b|^2 + tr(W S_q W^T)) / 2 s^2
    # and its Monte-Carlo sd: with u = W (z - mu) ~ N(0, C), Var |r - u|^2 = 2 tr(C^2) + 4 r^T C r
    resid = X - q.mean @ LG.W.T - LG.b  # r, (B, D)
    cov = LG.W @ q.covariance_matrix[0] @ LG.W.T  # C, (D, D)
    rec = -2.5 * math.log(2 * math.pi * LG.s**2) - ((resid**2).sum(-1) + cov.trace()) / (2 * LG.s**2)
    se = (2 * (cov @ cov).trace() + 4 * ((resid @ cov) * resid).sum(-1)).sqrt() / (2 * LG.s**2) / math.sqrt(20000)
    assert ((stats["reconstruction"] - rec).abs() / se).max() < 4
    exact_elbo = LG.exact_elbo(X, shift, factor)
    assert ((stats["elbo_analytic_kl"] - exact_elbo).abs() / se).max() < 4  # the KL part is exact
    assert torch.equal(stats["elbo"], stats["curve"][1])  # the mean log weight, same draws as the curve
    assert torch.allclose(stats["elbo"], exact_elbo, atol=0.03)
    assert sorted(stats["curve"]) == [1, 5, 50, 20000]  # the curve always ends at S
    assert torch.allclose(stats["curve"][20000], LG.log_px(X), atol=0.03)
    assert torch.allclose(stats["means"]["z"], q.mean, atol=0.02)  # E_q[z | x] from the draws
    assert not stats["constant"].any() and not stats["point_mass"].any()
    assert (stats["khat"] < 0.7).all() and (stats["ess"] > 1000).all()


def test_exact_posterior_report_has_zero_gap_and_says_exact():
    vae = LG.vae()
    stats = dataset_statistics(vae.model, vae.guide, X, 500, batch_size=4)  # two batches, ragged
    report = summarise(stats, 500)
    assert report["num_images"] == 6 and report["gap"] == pytest.approx(0.0, abs=1e-9)
    assert report["log_likelihood"] == pytest.approx(LG.log_px(X).mean().item(), abs=1e-9)
    assert report["verdict"]["level"] == "exact" and report["khat"]["median"] is None
    assert report["ess_median"] == pytest.approx(500.0)
    json.dumps(json_safe(report), allow_nan=False)  # strict JSON even with undefined k-hat


def _report(khat, constant=False, point_mass=False):
    return {"num_samples": 100, "guide_is_point_mass": point_mass, "constant_weights_frac": float(constant),
            "khat": {"frac_above_0_7": float((torch.tensor(khat) > 0.7).double().mean())}}


@pytest.mark.parametrize("khat,level", [
    ([0.2] * 20, "reliable"), ([0.2] * 19 + [0.9], "reliable"), ([0.2] * 15 + [0.9] * 5, "caution"),
    ([0.9] * 15 + [0.2] * 5, "lower-bound-only"),
])
def test_verdict_follows_the_share_of_large_khat(khat, level):
    assert verdict(_report(khat))["level"] == level
    assert "lower bound" in verdict(_report([1.2] * 10))["message"]  # never presented as log p(x)


def test_verdict_for_point_masses_and_exact_posteriors():
    assert verdict(_report([0.9], point_mass=True))["level"] == "not-a-bound"
    assert verdict(_report([0.1], constant=True))["level"] == "exact"


def test_inference_gaps_when_the_family_holds_the_posterior():
    """Orthogonal W: the exact posterior is diagonal, so q* = p(z|x): approximation gap 0 and
    amortization gap = KL(q || p(z|x)) of the (perturbed) encoder."""
    shift, factor = 0.3, 1.4
    vae = LG.vae(shift, factor)
    x = X[:3]
    gaps = inference_gaps(vae, x, num_samples=20000, steps=200, lr=0.05)
    kl = (LG.log_px(x) - LG.exact_elbo(x, shift, factor)).mean().item()
    assert kl > 1.0
    # tolerances: about 5 sd of each estimate over seeds (0.002 and 0.012 with 20000 draws)
    assert gaps["approximation_gap"] == pytest.approx(0.0, abs=0.015)
    assert gaps["amortization_gap"] == pytest.approx(kl, abs=0.06)
    assert gaps["inference_gap"] == pytest.approx(gaps["approximation_gap"] + gaps["amortization_gap"])
    assert gaps["log_likelihood"] == pytest.approx(LG.log_px(x).mean().item(), abs=0.01)


def test_inference_gaps_when_the_family_cannot_hold_the_posterior():
    """Correlated posterior N(m, S), diagonal family: the best q* is N(m, diag(1 / (S^-1)_jj)), so the
    approximation gap is KL of that q* to the posterior, in closed form."""
    lg = LinearGaussian(weight=[[1.0, 0.8], [1.0, 1.2], [0.5, 0.3], [-0.2, 0.1]])  # nearly parallel columns
    x = lg.sample_x(3)
    vae = lg.vae(0.1, 1.4)  # amortised q: mean shifted by 0.1, sd 1.4 times the marginal sd
    best = MultivariateNormal(lg.posterior(x).mean, torch.diag(1 / torch.linalg.inv(lg.post_cov).diagonal()))
    approx = kl_divergence(best, lg.posterior(x)).mean().item()  # 0.66
    amort = (kl_divergence(lg.q(x, 0.1, 1.4), lg.posterior(x)) - kl_divergence(best, lg.posterior(x))).mean().item()
    assert approx > 0.5 and amort > 1.0, (approx, amort)
    gaps = inference_gaps(vae, x, num_samples=20000, steps=200, lr=0.05)
    # tolerances: about 5 sd of each estimate over seeds (0.005 and 0.024 with 20000 draws)
    assert gaps["approximation_gap"] == pytest.approx(approx, abs=0.03)
    assert gaps["amortization_gap"] == pytest.approx(amort, abs=0.12)


def test_free_guide_starts_at_the_encoder_output():
    vae = LG.vae(0.1, 1.1)
    guide_star, params = free_guide(vae.guide, vae.posterior, X)
    assert len(params) == 1 and torch.equal(params[0], vae.encoder(X).detach())
    with pytest.raises(ValueError, match="the x it was built for"):
        guide_star(X[:2])
    with pytest.raises(ValueError, match="no amortised output"):
        free_guide(vae.guide, vae.prior, X)  # the prior is never called by the guide


# --- command line --------------------------------------------------------------------------------

FAST = ["--dataset", "digits", "--hidden", "32", "--latent-dim", "4", "--batch-size", "200", "--quiet"]
KEYS = {"num_images", "num_samples", "elbo", "reconstruction", "kl", "log_likelihood", "gap", "bound_curve",
        "stderr", "khat", "ess_median", "active_units", "approximation_gap", "amortization_gap"}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    assert main(["train", *FAST, "--epochs", "2", "--out", str(out)]) == 0
    return out


def test_evaluate_writes_eval_json_with_every_key(trained_run, capsys):
    code = main(["evaluate", str(trained_run), "--num-samples", "60", "--max-images", "30", "--batch-size", "16",
                 "--local-opt-images", "3", "--local-opt-steps", "5"])
    assert code == 0
    out = capsys.readouterr().out
    assert "gap L_60 - ELBO" in out and "verdict:" in out and "k-hat median" in out
    report = json.loads((trained_run / "eval.json").read_text())
    assert KEYS <= set(report)
    assert report["num_images"] == 30 and report["num_samples"] == 60
    assert set(report["bound_curve"]) == {"1", "5", "50", "60"} and set(report["khat"]) >= {
        "median", "max", "frac_above_0_7"}
    assert report["bound_curve"]["1"] <= report["bound_curve"]["60"] + 1e-9
    assert report["gap"] == pytest.approx(report["log_likelihood"] - report["elbo"])
    assert report["elbo"] == pytest.approx(report["bound_curve"]["1"])
    assert report["elbo_analytic_kl"] == pytest.approx(report["reconstruction"] - report["kl"])
    assert 0 <= report["active_units"] <= 4 and report["inference_gap"]["num_images"] == 3


def _error(capsys, *args):
    code = main([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("pyro-vae: error: ") and "\n" not in err, err
    return err


def test_evaluate_error_paths(trained_run, tmp_path, capsys):
    assert "does not exist" in _error(capsys, "evaluate", tmp_path / "nothing")
    assert "--num-samples must be a positive integer" in _error(capsys, "evaluate", trained_run, "--num-samples", 0)
    assert "--batch-size must be a positive" in _error(capsys, "evaluate", trained_run, "--batch-size", -3)
    assert "no validation split" in _error(capsys, "evaluate", trained_run, "--split", "valid")
    assert "one of test, valid or train" in _error(capsys, "evaluate", trained_run, "--split", "dev")
    assert "exceeds the 5 images" in _error(capsys, "evaluate", trained_run, "--max-images", 5,
                                            "--local-opt-images", 9)


def test_seeded_batches_do_not_depend_on_the_batches_before_them():
    """With a seed, an image's draws depend on its batch alone: a shard of the batches (what one of
    several processes runs) gives exactly the rows a full run gives."""
    from pyro_vae.diagnostics.tightness import batch_seed
    from pyro_vae.inference.distributed import Distributed

    lg = LinearGaussian()
    vae, x = lg.vae(shift=0.3), lg.sample_x(50)
    full = dataset_statistics(vae.model, vae.guide, x, 40, batch_size=10, seed=5)
    again = dataset_statistics(vae.model, vae.guide, x, 40, batch_size=10, seed=5)
    assert torch.equal(full["elbo"], again["elbo"])
    assert torch.equal(full["khat"].nan_to_num(), again["khat"].nan_to_num())
    class SecondOfTwo(Distributed):  # rank 1 of 2, without a process group: keep its own batches
        def gather(self, obj):
            return [obj]

    shard = dataset_statistics(vae.model, vae.guide, x, 40, batch_size=10, seed=5,
                               distributed=SecondOfTwo(rank=1, world_size=2))  # batches 1 and 3 only
    assert torch.equal(shard["elbo"], torch.cat([full["elbo"][10:20], full["elbo"][30:40]]))
    assert batch_seed(5, 0) == 5 and len({batch_seed(5, s) for s in range(0, 10**6, 100)}) == 10**4


def test_without_psis_the_bound_stays_and_the_verdict_says_unchecked():
    lg = LinearGaussian()
    vae, x = lg.vae(shift=0.3), lg.sample_x(30)
    with_psis = summarise(dataset_statistics(vae.model, vae.guide, x, 200, batch_size=15, seed=1), 200)
    without = summarise(dataset_statistics(vae.model, vae.guide, x, 200, batch_size=15, seed=1, psis=False), 200)
    assert without["log_likelihood"] == with_psis["log_likelihood"] and without["elbo"] == with_psis["elbo"]
    assert without["khat"]["median"] is None and without["verdict"]["level"] == "unchecked"
    assert with_psis["psis_fitted"] and not without["psis_fitted"]
    from pyro_vae.diagnostics.tightness import format_table

    assert "PSIS estimate" in format_table(with_psis) and "PSIS estimate" not in format_table(without)

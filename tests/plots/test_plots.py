"""Figures: each function returns a Figure with the expected axes and images and writes a PNG;
the manifold decodes exactly G^2 points; ``pyro-vae plot`` writes the expected files."""

import json

import pyro.distributions as dist
import pytest
import torch

from pyro_vae.cli import main
from pyro_vae.experiment.runs import save_png as save_figure
from pyro_vae.plots import (
    bound_tightness_figure,
    gradient_snr_figure,
    image_rows_figure,
    khat_figure,
    learning_curves_figure,
    training_curves_figure,
    variance_ratio_figure,
)
from pyro_vae.plots.latent import (
    empirical_quantiles,
    image_grid_figure,
    interpolate,
    interpolation_figure,
    latent_scatter_figure,
    manifold_figure,
    manifold_grid,
    marginal_quantiles,
    pca_2d,
    reconstructions_figure,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RUN_FIGURES = {"training_curves.png", "reconstructions.png", "samples.png", "interpolations.png",
               "latent_scatter.png", "latent_manifold.png"}


def assert_png(fig, tmp_path, name="fig.png"):
    path = tmp_path / name
    save_figure(fig, path, dpi=40)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000


def image_count(fig):
    return sum(len(ax.images) for ax in fig.axes)


# --- the latent manifold ----------------------------------------------------------------------------

def test_manifold_decodes_exactly_grid_size_squared_points(tmp_path):
    calls = []

    def decode(z):
        calls.append(z.clone())
        return torch.sigmoid(z.sum(-1, keepdim=True)).expand(-1, 64)  # (N, 64)

    g = 7
    values = marginal_quantiles(dist.Normal(torch.zeros(2), torch.ones(2)).to_event(1), torch.linspace(0.05, 0.95, g))
    fig = manifold_figure(decode, values, torch.zeros(2), (8, 8))
    assert len(calls) == 1 and calls[0].shape == (g * g, 2)
    assert len(fig.axes) == 1 and image_count(fig) == 1
    assert fig.axes[0].images[0].get_array().shape == (g * 9 + 1, g * 9 + 1)  # 8x8 cells, 1-pixel padding
    assert_png(fig, tmp_path)


def test_manifold_grid_layout_matches_kingma_welling():
    """Columns run along z_1 left to right, rows along z_2 top (largest) to bottom; the other
    dimensions stay at the centre."""
    values = torch.tensor([[-1.0, -2.0], [0.0, 0.0], [1.0, 2.0]])  # (G, 2)
    center = torch.tensor([5.0, 6.0, 7.0, 8.0])
    z = manifold_grid(values, center, dims=(1, 3)).reshape(3, 3, 4)
    assert torch.equal(z[0, 0], torch.tensor([5.0, -1.0, 7.0, 2.0]))  # top left: smallest z_2, largest z_4
    assert torch.equal(z[2, 2], torch.tensor([5.0, 1.0, 7.0, -2.0]))
    assert torch.equal(z[:, :, 0], torch.full((3, 3), 5.0)) and torch.equal(z[:, :, 2], torch.full((3, 3), 7.0))


def test_marginal_quantiles_exact_for_normal_and_empirical_for_mixture():
    probs = torch.tensor([0.05, 0.5, 0.975])
    normal = dist.Normal(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 2.0])).to_event(1)
    q = marginal_quantiles(normal, probs)
    expected = torch.tensor([[-1.6449, 1 - 2 * 1.6449], [0.0, 1.0], [1.9600, 1 + 2 * 1.96]])
    assert torch.allclose(q, expected, atol=1e-3)
    # a mixture: empirical quantiles of prior draws against the mixture CDF inverted by bisection
    loc, scale, weights = torch.tensor([-1.0, 2.0]), torch.tensor([1.0, 0.5]), torch.tensor([0.3, 0.7])
    comps = dist.Normal(loc[:, None].expand(2, 2), scale[:, None].expand(2, 2)).to_event(1)
    mixture = dist.MixtureSameFamily(dist.Categorical(probs=weights), comps)
    lo, hi = torch.full((3,), -10.0), torch.full((3,), 10.0)
    for _ in range(60):
        mid = (lo + hi) / 2
        below = (weights * dist.Normal(loc, scale).cdf(mid[:, None])).sum(-1) < probs
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    q = marginal_quantiles(mixture, probs, num_samples=40000)
    assert torch.allclose(q, lo[:, None].expand(3, 2), atol=0.05)
    codes = torch.arange(101.0)[:, None].expand(-1, 3)
    expected = torch.tensor([[10.0, 10.0], [90.0, 90.0]])
    assert torch.allclose(empirical_quantiles(codes, [0.1, 0.9], dims=(0, 2)), expected)


# --- latent scatter -----------------------------------------------------------------------------------

def test_pca_recovers_a_line_in_three_dimensions():
    t = torch.linspace(-1, 1, 50)
    direction = torch.tensor([1.0, 2.0, 2.0]) / 3
    codes = t[:, None] * direction + torch.tensor([4.0, 0.0, -1.0]) + 1e-4 * torch.randn(50, 3)
    xy, mean, axes, share = pca_2d(codes)
    assert share[0] > 0.999
    assert torch.allclose(xy[:, 0].abs(), t.double().abs(), atol=1e-3)  # distances along the line kept
    assert torch.allclose(mean.float(), codes.mean(0))


def test_latent_scatter_colours_labels_and_draws_mixture(tmp_path):
    codes, labels = torch.randn(120, 2), torch.arange(120) % 4
    mixture = {"loc": torch.randn(3, 2), "scale": torch.ones(3, 2), "weights": torch.full((3,), 1 / 3)}
    fig = latent_scatter_figure(codes, labels, mixture=mixture)
    ax = fig.axes[0]
    assert len(fig.axes) == 1
    assert len(ax.collections) == 4 + 1  # one scatter per label, one for the component means
    assert len(ax.patches) == 3  # a 1-sd ellipse per component
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["0", "1", "2", "3"]
    assert_png(fig, tmp_path)
    fig = latent_scatter_figure(torch.randn(80, 5), None, mixture=mixture | {"loc": torch.randn(3, 5)})
    assert "PC 1" in fig.axes[0].get_xlabel() and len(fig.axes[0].patches) == 0  # no ellipses after PCA


# --- image figures ------------------------------------------------------------------------------------

def test_image_figures_have_one_grid_per_row(tmp_path):
    x, shape = torch.rand(6, 64), (8, 8)
    fig = reconstructions_figure(x, x.flip(0), shape)
    assert len(fig.axes) == 2 and image_count(fig) == 2
    fig = reconstructions_figure(x, x, shape, corrupted=x * 0)
    assert [ax.get_ylabel() for ax in fig.axes] == ["corrupted", "reconstruction", "clean"]
    fig = image_grid_figure(torch.rand(12, 64), shape, nrow=4)
    assert image_count(fig) == 1 and fig.axes[0].images[0].get_array().shape == (3 * 9 + 1, 4 * 9 + 1)
    assert_png(fig, tmp_path)
    fig = image_rows_figure({"a": x, "b": x, "c": x}, shape)
    assert image_count(fig) == 3


def test_image_panels_figure_has_one_axis_per_cell_with_captions():
    from pyro_vae.plots import image_panels_figure

    panels = {"means": {"a": (torch.rand(40, 64), "0.50"), "b": (torch.rand(9, 64), "0.70")},
              "samples": {"a": (torch.rand(40, 64), "0.90")}}
    fig = image_panels_figure(panels, (8, 8), nrow=6, title="t")
    axes = fig.axes
    assert len(axes) == 4 and axes[0].get_title() == "a\n0.50" and axes[1].get_title() == "b\n0.70"
    assert axes[2].get_title() == "0.90" and not axes[3].get_frame_on() and not axes[3].images  # an empty cell
    assert axes[2].get_ylabel() == "samples"
    assert axes[0].get_ylabel() == "means" and axes[0].images[0].get_array().shape == (6 * 9 + 1, 6 * 9 + 1)


def test_interpolation_ends_at_both_codes(tmp_path):
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    path = interpolate(a, b, steps=5)  # (3, 5, 4)
    assert path.shape == (3, 5, 4)
    assert torch.allclose(path[:, 0], a) and torch.allclose(path[:, -1], b)
    assert torch.allclose(path[:, 2], (a + b) / 2)
    fig = interpolation_figure(torch.rand(3, 5, 64), (8, 8))
    assert image_count(fig) == 1 and fig.axes[0].images[0].get_array().shape == (3 * 9 + 1, 5 * 9 + 1)
    assert_png(fig, tmp_path)


# --- curves and diagnostics ----------------------------------------------------------------------------

def test_training_curves_plot_history_columns(tmp_path):
    history = [{"epoch": e, "train_loss": 100.0 / e, "test_elbo": -110.0 / e, "test_reconstruction": -90.0 / e,
                "test_kl": 20.0 / e} for e in range(1, 8)]
    fig = training_curves_figure(history)
    assert len(fig.axes) == 3
    train, test = fig.axes[0].get_lines()
    assert list(train.get_ydata()) == [-r["train_loss"] for r in history]
    assert list(test.get_ydata()) == [r["test_elbo"] for r in history]
    assert list(fig.axes[2].get_lines()[0].get_ydata()) == [r["test_kl"] for r in history]
    assert all("nats" in ax.get_ylabel() for ax in fig.axes)
    assert_png(fig, tmp_path)


def eval_report():
    return {"num_images": 100, "num_samples": 500, "elbo": -110.0, "gap": 4.0, "psis_log_likelihood": -105.5,
            "bound_curve": {"1": -110.0, "5": -108.0, "50": -106.5, "500": -106.0},
            "stderr": {"bound_curve": {"1": 1.0, "5": 0.9, "50": 0.9, "500": 0.8}},
            "khat": {"frac_above_0_7": 0.4}, "verdict": {"level": "caution"}}


def test_bound_tightness_marks_curve_elbo_psis_and_gap(tmp_path):
    fig = bound_tightness_figure(eval_report())
    ax = fig.axes[0]
    assert len(fig.axes) == 1 and ax.get_xscale() == "log"
    curve = ax.containers[0]  # the errorbar container
    assert list(curve.lines[0].get_xdata()) == [1, 5, 50, 500]
    assert list(curve.lines[0].get_ydata()) == [-110.0, -108.0, -106.5, -106.0]
    marked = {line.get_label().split()[0]: line.get_ydata()[0] for line in ax.get_lines()
              if line.get_label().startswith(("ELBO", "PSIS"))}
    assert marked == {"ELBO": -110.0, "PSIS": -105.5}
    assert any("= 4.00 nats" in t.get_text() for t in ax.texts)
    assert "nats" in ax.get_ylabel()
    assert_png(fig, tmp_path)


def test_khat_figure_splits_points_at_thresholds(tmp_path):
    khat = torch.tensor([0.1, 0.4, 0.6, 0.8, 1.2, float("nan")])
    fig = khat_figure(khat, num_samples=100)
    ax = fig.axes[0]
    assert [len(c.get_offsets()) for c in ax.collections] == [2, 1, 2]
    assert sorted(line.get_ydata()[0] for line in ax.get_lines()) == [0.5, 0.7]
    assert_png(fig, tmp_path)


def test_kl_figures_still_draw(tmp_path):
    fig = variance_ratio_figure({"1": {"elbo": 1.3, "encoder": 0.9, "decoder": 1.0}})
    assert len(fig.axes) == 1
    assert_png(fig, tmp_path)
    fig = learning_curves_figure({"trace": {"0": [-120, -115]}, "meanfield": {"0": [-119, -114]}})
    assert len(fig.axes[0].get_lines()) == 4  # a thin line per seed and a mean per objective


def test_gradient_snr_figure_draws_one_panel_per_group_log_log(tmp_path):
    curve = {"ks": [1, 10, 100], "snr_floor": 0.08,
             "snr": {"iwae": {"decoder": [1.0, 3.0, 9.0], "encoder": [0.5, 0.2, 0.05]},
                     "iwae-dreg": {"decoder": [1.0, 3.0, 9.0], "encoder": [0.6, 1.5, 5.0]}}}
    fig = gradient_snr_figure(curve)
    assert [ax.get_title() for ax in fig.axes] == ["encoder gradient", "decoder gradient"]  # encoder first
    ax = fig.axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    lines = ax.get_lines()  # iwae, iwae-dreg, then the K^-1/2 and K^+1/2 guides through the first point
    assert list(lines[1].get_ydata()) == [0.6, 1.5, 5.0]
    assert lines[2].get_ydata()[-1] == pytest.approx(0.05) and lines[3].get_ydata()[-1] == pytest.approx(5.0)
    assert_png(fig, tmp_path)


# --- the `pyro-vae plot` command ----------------------------------------------------------------------

TINY = ["--dataset", "digits", "--epochs", "2", "--hidden", "32", "--latent-dim", "3", "--quiet", "--threads", "1"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "vae"
    assert main(["train", "--out", str(out), *TINY]) == 0
    return out


def test_plot_command_writes_run_figures_then_eval_and_kl_ones(tiny_run, capsys):
    assert main(["plot", str(tiny_run), "--grid-size", "5", "--dpi", "40"]) == 0
    out = capsys.readouterr().out
    assert {p.name for p in tiny_run.glob("*.png")} == RUN_FIGURES
    assert f"pyro-vae evaluate {tiny_run}" in out and f"pyro-vae compare-kl {tiny_run}" in out
    for p in tiny_run.glob("*.png"):
        assert p.read_bytes().startswith(PNG_MAGIC)

    assert main(["evaluate", str(tiny_run), "--num-samples", "60", "--max-images", "30", "--batch-size", "20",
                 "--no-representation", "--quiet"]) == 0
    assert main(["compare-kl", str(tiny_run), "--repeats", "3", "--kl-points", "20", "--kl-samples", "5",
                 "--batch-size", "16", "--snr-k", "1", "4", "--quiet"]) == 0
    assert main(["plot", str(tiny_run), "--grid-size", "5", "--dpi", "40", "--khat-images", "30"]) == 0
    out = capsys.readouterr().out
    assert {p.name for p in tiny_run.glob("*.png")} == RUN_FIGURES | {"bound_tightness.png", "khat.png",
                                                                        "kl_variance_ratio.png", "gradient_snr.png"}
    assert "skipped kl_learning_curves.png" in out and "--outcome-epochs" in out


def test_khat_figure_repeats_the_draws_of_evaluate(tiny_run):
    """Recomputed with eval.json's settings, the per-image k-hat reproduces evaluate's summary."""
    from pyro_vae.cli.figures import per_image_khat
    from pyro_vae.experiment import load_run

    if not (tiny_run / "eval.json").exists():
        assert main(["evaluate", str(tiny_run), "--num-samples", "60", "--max-images", "30", "--batch-size", "20",
                     "--no-representation", "--quiet"]) == 0
    report = json.loads((tiny_run / "eval.json").read_text())
    khat = per_image_khat(load_run(str(tiny_run)), report, 1000)
    assert len(khat) == report["num_images"]
    assert khat.median().item() == pytest.approx(report["khat"]["median"], abs=1e-9)
    assert khat.max().item() == pytest.approx(report["khat"]["max"], abs=1e-9)


def test_plot_command_on_denoising_autoencoder(tmp_path, capsys):
    out = tmp_path / "dae"
    assert main(["train", "--out", str(out), "--model", "denoising-ae", *TINY]) == 0
    assert main(["plot", str(out), "--grid-size", "4", "--dpi", "40", "--quiet"]) == 0
    assert {p.name for p in out.glob("*.png")} == RUN_FIGURES - {"samples.png"}
    assert "skipped samples.png" not in capsys.readouterr().out  # --quiet lists only the written files
    assert main(["evaluate", str(out), "--max-images", "20", "--no-representation", "--quiet"]) == 0
    assert main(["plot", str(out), "--grid-size", "4", "--dpi", "40"]) == 0
    printed = capsys.readouterr().out
    assert "skipped bound_tightness.png: the guide is a point mass" in printed  # not a bound: no curve
    assert not (out / "bound_tightness.png").exists() and not (out / "khat.png").exists()


def test_plot_command_rejects_bad_input(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "missing")]) == 2
    assert main(["plot", str(tmp_path), "--grid-size", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("pyro-vae: error:") for line in err)
    assert "--grid-size" in err[1]

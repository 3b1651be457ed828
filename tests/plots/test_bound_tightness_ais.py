"""bound_tightness.png with AIS and the BDMC band (the ``ais`` / ``bdmc`` entries of eval.json)."""

from pyro_vae.plots import bound_tightness_figure

BDMC = {"num_points": 20, "num_steps": 100, "gap_mean": 0.6, "gap_max": 2.0, "lower": -120.0, "upper": -119.4}


def report(**extra):
    base = {"num_images": 100, "num_samples": 500, "elbo": -110.0, "gap": 4.0, "psis_log_likelihood": -105.5,
            "log_likelihood": -106.0, "bound_curve": {"1": -110.0, "5": -108.0, "50": -106.5, "500": -106.0},
            "stderr": {"bound_curve": {"1": 1.0, "5": 0.9, "50": 0.9, "500": 0.8}},
            "khat": {"frac_above_0_7": 0.4}, "verdict": {"level": "caution"}}
    return {**base, **extra}


def ais_entry(understatement=1.5, num_images=30):
    return {"num_steps": 1000, "num_images": num_images, "iwae_num_samples": 500, "understatement": understatement,
            "log_likelihood": -104.0}


def test_ais_line_sits_at_l_s_plus_the_paired_difference():
    ax = bound_tightness_figure(report(ais=ais_entry())).axes[0]
    ais = [line for line in ax.get_lines() if line.get_label().startswith("AIS")]
    assert len(ais) == 1 and ais[0].get_ydata()[0] == -106.0 + 1.5
    assert "T=1000 (30 images): L_500 +1.50" in ais[0].get_label()


def test_bdmc_band_spans_the_gap_above_ais():
    ax = bound_tightness_figure(report(ais=ais_entry(), bdmc=BDMC)).axes[0]
    bands = [p for p in ax.patches if "BDMC" in p.get_label()]
    assert len(bands) == 1  # axhspan: a Rectangle in axes-x, data-y coordinates (matplotlib >= 3.9)
    bottom, top = sorted(bands[0].get_transform().transform([(0, 0), (0, 1)])[:, 1])
    lo, hi = sorted(ax.transData.transform([(1, -104.5), (1, -104.5 + 0.6)])[:, 1])
    assert abs(bottom - lo) < 1e-6 and abs(top - hi) < 1e-6


def test_bdmc_without_ais_is_a_note():
    fig = bound_tightness_figure(report(bdmc=BDMC))
    assert any("BDMC gap 0.60 nats (20 simulated points)" in t.get_text() for t in fig.axes[0].texts)
    assert not [line for line in fig.axes[0].get_lines() if line.get_label().startswith("AIS")]

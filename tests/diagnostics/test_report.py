"""``pv.tightness_report`` on a model/guide pair gives the numbers ``pyro-vae evaluate`` writes to eval.json,
and prints the same table."""

import json

import pytest

import pyro_vae as pv
from pyro_vae.cli import main

FAST = ["--dataset", "digits", "--hidden", "32", "--latent-dim", "4", "--batch-size", "200", "--quiet",
        "--threads", "1"]
SETTINGS = dict(num_samples=50, batch_size=12, seed=3, ais_steps=15, ais_chains=3, ais_images=5)


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_the_report_of_a_model_guide_pair_is_evaluates(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", *FAST, "--epochs", "2", "--out", str(out)]) == 0
    assert main(["evaluate", str(out), "--num-samples", "50", "--max-images", "24", "--batch-size", "12",
                 "--seed", "3", "--ais-steps", "15", "--ais-chains", "3", "--ais-images", "5",
                 "--no-representation", "--quiet", "--threads", "1"]) == 0
    written = json.loads((out / "eval.json").read_text())
    capsys.readouterr()

    loaded = pv.load_run(out)
    x = loaded.data.x_test[:24]
    report = pv.tightness_report(loaded.model.model, loaded.model.guide, x, print_table=True, title="mine",
                                 **SETTINGS)
    printed = capsys.readouterr().out
    assert printed.strip() == pv.format_table(report, "mine").strip()
    assert "L_50" in printed and "AIS" in printed and report["verdict"]["ais"]["level"]

    ours, theirs = _flat(json.loads(json.dumps(report))), _flat(written)
    timings = {k for k in ours if "seconds" in k}
    assert set(ours) - timings <= set(theirs)  # evaluate adds run metadata, never drops a report key
    for key in set(ours) - timings:
        a, b = ours[key], theirs[key]
        if isinstance(a, float) and isinstance(b, float):
            assert a == pytest.approx(b, rel=1e-9, abs=1e-12), key
        else:
            assert a == b, key


def test_bad_ais_settings_are_refused_before_any_work():
    with pytest.raises(pv.UserError, match="ais_schedule must be one of sigmoid, linear"):
        pv.tightness_report(None, None, None, num_samples=10, ais_steps=5, ais_schedule="cubic")
    with pytest.raises(pv.UserError, match="bdmc_points must be 0 or a positive integer"):
        pv.tightness_report(None, None, None, num_samples=10, bdmc_points=-1)

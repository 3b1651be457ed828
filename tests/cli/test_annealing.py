"""``pyro-vae evaluate DIR --ais-steps N --bdmc P``: the ais and bdmc entries, table and errors."""

import json

import pytest

from pyro_vae.cli import main

FAST = ["--dataset", "digits", "--hidden", "32", "--latent-dim", "4", "--batch-size", "200", "--quiet"]
EVAL = ["--num-samples", "60", "--max-images", "12", "--batch-size", "12", "--no-representation"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ais") / "run"
    assert main(["train", *FAST, "--epochs", "2", "--out", str(out)]) == 0
    return out


def test_evaluate_adds_ais_and_bdmc(trained_run, capsys):
    code = main(["evaluate", str(trained_run), *EVAL, "--ais-steps", "8", "--ais-chains", "3", "--ais-leapfrog", "2",
                 "--ais-images", "5", "--bdmc", "4"])
    assert code == 0
    out = capsys.readouterr().out
    assert "AIS, T=8 (5 imgs)" in out and "AIS - L_60 (same imgs)" in out and "BDMC gap upper - lower" in out
    assert "AIS verdict: " in out
    report = json.loads((trained_run / "eval.json").read_text())
    ais, bdmc = report["ais"], report["bdmc"]
    assert {"log_likelihood", "stderr", "num_steps", "num_chains", "leapfrog_steps", "schedule", "init",
            "acceptance_mean", "seconds"} <= set(ais)
    assert (ais["num_steps"], ais["num_chains"], ais["leapfrog_steps"], ais["num_images"]) == (8, 3, 2, 5)
    assert (ais["schedule"], ais["init"]) == ("sigmoid", "guide")
    assert {"num_points", "lower", "upper", "gap_mean", "gap_max", "num_steps", "seconds"} <= set(bdmc)
    assert bdmc["num_points"] == 4 and bdmc["num_steps"] == 8
    assert report["verdict"]["ais"]["level"] in ("understated", "agree", "ais-not-converged")


def test_evaluate_passes_schedule_and_init_to_ais_and_bdmc(trained_run, capsys):
    assert main(["evaluate", str(trained_run), *EVAL, "--bdmc", "2", "--ais-steps", "4", "--ais-chains", "2",
                 "--ais-images", "1", "--ais-schedule", "linear", "--ais-init", "prior", "--quiet"]) == 0
    report = json.loads((trained_run / "eval.json").read_text())
    assert report["ais"]["schedule"] == "linear" and report["ais"]["init"] == "prior"
    assert report["bdmc"]["schedule"] == "linear"


def _error(capsys, *args):
    code = main([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("pyro-vae: error: ") and "\n" not in err, err
    return err


def test_annealing_flags_are_checked_before_any_work(trained_run, capsys):
    assert "--ais-steps must be a positive integer" in _error(capsys, "evaluate", trained_run, "--ais-steps", 0)
    assert "--ais-chains must be a positive integer" in _error(capsys, "evaluate", trained_run, "--ais-chains", -2)
    assert "--bdmc must be 0 or a positive integer" in _error(capsys, "evaluate", trained_run, "--bdmc", -1)


def test_a_point_mass_guide_is_told_to_start_from_the_prior(tmp_path, capsys):
    out = tmp_path / "ae"
    assert main(["train", *FAST, "--model", "ae", "--epochs", "1", "--out", str(out)]) == 0
    err = _error(capsys, "evaluate", out, *EVAL, "--ais-steps", 3)
    assert "--ais-init guide needs a guide with a density" in err and "use --ais-init prior" in err

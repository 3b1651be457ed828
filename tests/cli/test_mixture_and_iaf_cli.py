"""`pyro-vae train --model mixture:K` (EM by default, enum, trace) and `--posterior iaf:N` (context IAF)
from the command line through evaluate and plot."""

import json

import pytest

from pyro_vae.cli import main

FAST = ["--dataset", "digits", "--binarize", "static", "--hidden", "32", "--batch-size", "200", "--threads", "1"]


def _json(path):
    return json.loads(path.read_text())


def test_mixture_trains_by_em_and_evaluates_exactly(tmp_path, capsys):
    out = tmp_path / "em"
    assert main(["train", *FAST, "--model", "mixture:4", "--epochs", "4", "--out", str(out)]) == 0
    assert "training with --elbo em" in capsys.readouterr().out
    config, history = _json(out / "config.json"), (out / "history.csv").read_text().splitlines()
    assert config["elbo"] == "em" and config["posterior"] == "exact"
    train_loss = [float(row.split(",")[1]) for row in history[1:]]
    assert all(a >= b - 1e-4 for a, b in zip(train_loss, train_loss[1:], strict=False))  # EM: -log p(x) never rises
    assert main(["evaluate", str(out), "--num-samples", "50", "--quiet", "--threads", "1"]) == 0
    report = _json(out / "eval.json")
    exact = report["exact"]
    assert abs(exact["gap"]) < 1e-4 and report["verdict"]["level"] == "exact"
    assert exact["log_likelihood"] == pytest.approx(report["elbo"], abs=1e-3)
    assert exact["log_likelihood"] == pytest.approx(_json(out / "summary.json")["test_elbo"], abs=1e-3)
    assert "reconstruction_error" not in report  # the code report needs a continuous code
    assert main(["plot", str(out), "--quiet", "--threads", "1"]) == 0
    assert (out / "components.png").exists() and (out / "samples.png").exists()
    assert not (out / "latent_manifold.png").exists()


def test_mixture_with_an_amortised_guide_reports_the_exact_gap(tmp_path):
    out = tmp_path / "amortised"
    assert main(["train", *FAST, "--model", "mixture:4", "--posterior", "categorical", "--elbo", "enum",
                 "--epochs", "3", "--quiet", "--out", str(out)]) == 0
    assert main(["evaluate", str(out), "--num-samples", "200", "--quiet", "--threads", "1"]) == 0
    exact = _json(out / "eval.json")["exact"]
    assert exact["gap"] > 0 and exact["max_abs_identity_error"] < 1e-4
    assert exact["gap"] == pytest.approx(exact["kl_posterior"], abs=1e-5)
    assert abs(exact["bound_curve_minus_log_likelihood"]["200"]) < abs(exact["bound_curve_minus_log_likelihood"]["1"])
    assert main(["train", "--resume", str(out), "--epochs", "4", "--quiet"]) == 0  # resumes with its own objective
    assert _json(out / "config.json")["elbo"] == "enum"


@pytest.mark.parametrize("args, message", [
    (["--elbo", "meanfield"], "discrete latent, which has no reparameterised draw .* use --elbo enum"),
    (["--posterior", "categorical", "--elbo", "em"], "em needs"),
    (["--posterior", "iaf:2"], "use --posterior exact"),
    (["--local-opt-images", "2"], None),
])
def test_mixture_refusals_are_one_line(tmp_path, capsys, args, message):
    out = tmp_path / "bad"
    if message is None:  # evaluate's gap decomposition: a discrete latent's gap is already exact
        main(["train", *FAST, "--model", "mixture:2", "--epochs", "1", "--quiet", "--out", str(out)])
        code = main(["evaluate", str(out), *args, "--quiet"])
        message = "drop --local-opt-images"
    else:
        code = main(["train", *FAST, "--model", "mixture:2", *args, "--epochs", "1", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert __import__("re").search(message, err), err


def test_context_iaf_trains_and_evaluates(tmp_path, capsys):
    out = tmp_path / "iaf"
    assert main(["train", *FAST, "--posterior", "iaf:2", "--latent-dim", "4", "--elbo", "trace", "--epochs", "3",
                 "--quiet", "--out", str(out)]) == 0
    history = (out / "history.csv").read_text().splitlines()
    assert float(history[-1].split(",")[2]) > float(history[1].split(",")[2])  # test ELBO rose
    assert main(["evaluate", str(out), "--num-samples", "100", "--max-images", "50", "--quiet"]) == 0
    report = _json(out / "eval.json")
    assert report["gap"] >= 0 and report["num_images"] == 50
    code = main(["train", *FAST, "--posterior", "iaf:2", "--prior", "vamp:5", "--out", str(tmp_path / "v")])
    err = capsys.readouterr().err
    assert code == 2 and "use iaf-shared:N" in err


def test_compare_kl_refuses_a_discrete_latent(tmp_path, capsys):
    out = tmp_path / "m"
    main(["train", *FAST, "--model", "mixture:2", "--epochs", "1", "--quiet", "--out", str(out)])
    assert main(["compare-kl", str(out), "--quiet"]) == 2
    assert "its KL and gap are exact sums" in capsys.readouterr().err

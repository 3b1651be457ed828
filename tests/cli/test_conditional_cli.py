"""`pyro-vae train --model cvae | cvae-quadrants:Q | m2` through evaluate and plot, and their bad input:
one-line errors, exit status 2, no run directory."""

import json

import numpy as np
import pytest

from pyro_vae.cli import main

FAST = ["--dataset", "digits", "--hidden", "32", "--latent-dim", "4", "--batch-size", "200", "--threads", "1",
        "--epochs", "1", "--quiet"]
EVAL = ["--num-samples", "20", "--quiet", "--threads", "1"]


def _json(path):
    return json.loads(path.read_text())


def test_cvae_scores_log_p_x_given_y_and_draws_a_row_per_class(tmp_path):
    out = tmp_path / "cvae"
    assert main(["train", *FAST, "--model", "cvae", "--out", str(out)]) == 0
    assert main(["evaluate", str(out), *EVAL, "--ais-steps", "5", "--ais-images", "3"]) == 0
    report = _json(out / "eval.json")
    assert report["bound_target"] == "log p(x | y)" and report["conditional"] is True
    assert report["ais"]["num_images"] == 3 and report["log_likelihood"] >= report["elbo"]
    assert main(["plot", str(out), "--quiet", "--threads", "1"]) == 0
    assert (out / "class_samples.png").exists() and not (out / "latent_manifold.png").exists()


def test_quadrants_report_the_baseline_beside_the_cvae(tmp_path):
    out = tmp_path / "q"
    assert main(["train", *FAST, "--model", "cvae-quadrants:3", "--out", str(out)]) == 0
    assert main(["evaluate", str(out), *EVAL]) == 0
    report = _json(out / "eval.json")
    assert report["bound_target"] == "log p(x_hidden | x_visible)"
    assert report["baseline"]["cross_entropy"] > 0 and report["baseline"]["num_images"] == report["num_images"]
    assert main(["plot", str(out), "--quiet", "--threads", "1"]) == 0
    assert (out / "quadrants.png").exists()


def test_m2_records_its_split_and_reports_error_and_joint_bounds(tmp_path):
    out = tmp_path / "m2"
    assert main(["train", *FAST, "--model", "m2", "--labels", "50", "--alpha-scale", "1", "--out", str(out)]) == 0
    split, config = _json(out / "labels.json"), _json(out / "config.json")
    assert split["num_labels"] == 50 and len(split["labelled"]) == 50 and config["elbo"] == "enum"
    assert main(["train", "--resume", str(out), "--epochs", "2", "--quiet"]) == 0
    assert main(["evaluate", str(out), *EVAL, "--max-images", "40"]) == 0
    report = _json(out / "eval.json")
    assert report["bound_target"] == "log p(x)" and 0 <= report["classification"]["error"] <= 1
    assert report["joint"]["log_likelihood"] < report["log_likelihood"]  # log p(x, y) <= log p(x)
    assert _json(out / "summary.json")["epochs"] == 2


def _npz(tmp_path, name, x_train, x_test, **labels):
    path = tmp_path / f"{name}.npz"
    np.savez(path, x_train=x_train, x_test=x_test, **labels)
    return f"npz:{path}"


@pytest.mark.parametrize("case, args, message", [
    ("no labels", ["--model", "cvae"], "needs labels, and dataset .* has none"),
    ("no labels", ["--model", "m2", "--labels", "10"], "needs labels"),
    ("labels", ["--model", "m2", "--labels", "30"], "--labels 30 exceeds the 20 training images"),
    ("labels", ["--model", "m2", "--labels", "5"], "--labels 5 is not a multiple of the 2 classes"),
    ("labels", ["--model", "m2"], "give --labels N"),
    ("negative", ["--model", "cvae"], "y_train holds labels outside 0..1"),
    ("flat", ["--model", "cvae-quadrants:2"], "quadrants need square grey images"),
    ("labels", ["--model", "cvae-quadrants:4"], "Q = 1, 2 or 3"),
    ("labels", ["--model", "vae", "--labels", "10"], "--labels applies only to --model m2"),
    ("labels", ["--model", "m2", "--labels", "10", "--lr-schedule", "cosine"], "no --lr-schedule"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, case, args, message):
    images = np.random.default_rng(0).integers(0, 2, (20, 4, 4)).astype(np.uint8)
    labels = {"y_train": np.arange(20) % 2, "y_test": np.arange(6) % 2}
    data = {"no labels": _npz(tmp_path, "a", images, images[:6]),
            "labels": _npz(tmp_path, "b", images, images[:6], **labels),
            "negative": _npz(tmp_path, "c", images, images[:6], y_train=np.arange(20) % 2 - 1, y_test=labels["y_test"]),
            "flat": _npz(tmp_path, "d", images.reshape(20, 16)[:, :10], images.reshape(20, 16)[:6, :10], **labels),
            }[case]
    out = tmp_path / "run"
    assert main(["train", "--dataset", data, "--epochs", "1", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("pyro-vae: error:")
    assert __import__("re").search(message, err), err
    assert not out.exists()

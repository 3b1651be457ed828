"""``pyro-vae train --log tensorboard | mlflow``: what is logged reads back as history.csv says, logging
changes nothing in training, and a missing package is a one-line error."""

import csv
import os
import sys

import pytest

from pyro_vae.cli.parser import main
from pyro_vae.cli.tracking import SCALARS

TRAIN = ["train", "--dataset", "digits", "--binarize", "static", "--epochs", "3", "--latent-dim", "2",
         "--hidden", "16", "--batch-size", "256", "--quiet"]


def _history(run):
    with open(os.path.join(run, "history.csv")) as f:
        return list(csv.DictReader(f))


def test_tensorboard_scalars_match_history_and_logging_changes_nothing(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    logged, plain = str(tmp_path / "logged"), str(tmp_path / "plain")
    assert main([*TRAIN, "--out", logged, "--log", "tensorboard", "--log-images", "2"]) == 0
    assert main([*TRAIN, "--out", plain]) == 0
    history = _history(logged)
    events = event_accumulator.EventAccumulator(os.path.join(logged, "tensorboard"))
    events.Reload()
    for column, tag in SCALARS.items():
        scalars = events.Scalars(tag)
        assert [e.step for e in scalars] == [1, 2, 3]
        assert [e.value for e in scalars] == pytest.approx([float(r[column]) for r in history], rel=1e-6)
    for name in ("reconstructions", "samples"):  # every 2 epochs and at the last
        assert [e.step for e in events.Images(name)] == [2, 3]
    image = events.Images("reconstructions")[0]
    assert (image.height, image.width) == (2 * 9 + 1, 8 * 9 + 1)  # 8 test images over their reconstructions
    for a, b in zip(history, _history(plain), strict=False):  # the prior samples drew from a forked stream
        assert {k: a[k] for k in a if "seconds" not in k} == {k: b[k] for k in b if "seconds" not in k}


def test_a_missing_package_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    run = str(tmp_path / "run")
    assert main([*TRAIN, "--out", run, "--log", "mlflow"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--log mlflow needs the mlflow package: pip install 'pyro_vae[logging]'" in err
    assert not os.path.exists(run)  # refused before anything was written
    assert main([*TRAIN, "--out", run, "--log", "wandb"]) == 2
    assert "--log takes tensorboard or mlflow[:URI], got 'wandb'" in capsys.readouterr().err


def test_mlflow_logs_the_history_and_a_resumed_run_continues_it(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    run = str(tmp_path / "run")
    assert main([*TRAIN[:6], "2", *TRAIN[7:], "--out", run, "--log", "mlflow", "--log-images", "0"]) == 0
    assert main(["train", "--resume", run, "--epochs", "3", "--quiet", "--log", "mlflow", "--log-images", "3"]) == 0
    client = mlflow.MlflowClient(f"sqlite:///{os.path.abspath(run)}/mlflow.db")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # the resumed run logged into the same one
    history = _history(run)
    for column, tag in SCALARS.items():
        metric = client.get_metric_history(runs[0].info.run_id, tag)
        assert [m.step for m in metric] == [1, 2, 3]
        assert [m.value for m in metric] == pytest.approx([float(r[column]) for r in history])
    assert runs[0].data.params["latent_dim"] == "2"
    artifacts = [a.path for a in client.list_artifacts(runs[0].info.run_id, "images")]
    assert any("reconstructions+step+3" in a for a in artifacts) and not any("step+2" in a for a in artifacts)

"""The shipped benchmark checkpoint (benchmarks/burda-vae) still loads and still scores as trained."""

import csv
import os

import pytest
import torch

from pyro_vae.diagnostics.tightness import dataset_statistics, summarise
from pyro_vae.experiment import load_run

SHIPPED = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "burda-vae")


@pytest.mark.skipif(not os.path.isdir(SHIPPED), reason="no shipped checkpoint in this checkout")
def test_shipped_vae_is_model_only_and_scores_real_digits_like_its_history():
    """Its checkpoint holds the model alone (weights_only loads it), and its ELBO on 200 of the
    embedded MNIST test digits is within 3 standard errors of the last test ELBO it recorded on all
    10,000 (a wrong architecture, a stale file or a broken loader lands hundreds of nats away)."""
    state = torch.load(os.path.join(SHIPPED, "checkpoint.pt"), weights_only=True, map_location="cpu")
    assert "model" in state and "optimizer" not in state
    loaded = load_run(SHIPPED, dataset="mnist5k")
    with open(os.path.join(SHIPPED, "history.csv")) as f:
        last = list(csv.DictReader(f))[-1]
    assert loaded.epoch == int(last["epoch"])
    x = loaded.data.x_test[:200]  # (200, 784) binary digits
    report = summarise(dataset_statistics(loaded.model.model, loaded.model.guide, x, 100, seed=0), 100)
    assert abs(report["elbo"] - float(last["test_elbo"])) < 3 * report["stderr"]["elbo"]
    assert report["log_likelihood"] > report["elbo"]  # L_100 above the ELBO on average

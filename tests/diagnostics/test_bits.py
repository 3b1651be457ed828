"""Bits per dimension in ``pyro-vae evaluate``: exact for the discretised logistic, log 255 per value
for a density on 8-bit levels, none for a density on other grey levels."""

import json
import math

import pytest
import torch

import pyro_vae as pv
from pyro_vae.cli.parser import main
from pyro_vae.diagnostics.bits import bits_per_dim, bits_report, dequantization
from tests.helpers import digits_8bit


def test_bits_per_dim_by_hand():
    assert bits_per_dim(-100.0, 64) == pytest.approx(100 / (64 * math.log(2)))
    assert bits_per_dim(-100.0, 64, math.log(255)) == pytest.approx((100 + 64 * math.log(255)) / (64 * math.log(2)))
    assert bits_per_dim(-64 * math.log(256), 64) == pytest.approx(8.0)  # a uniform pmf over 256 levels: 8 bits


def test_the_correction_each_likelihood_gets():
    eight_bit, sixteen = torch.tensor([[0.0, 3 / 255, 1.0]]), torch.tensor([[0.0, 3 / 16, 1.0]])
    assert dequantization(pv.DiscretizedLogistic(2), eight_bit)[0] == 0.0
    assert dequantization(pv.Normal(0.1), eight_bit)[0] == pytest.approx(math.log(255))
    assert dequantization(pv.ContinuousBernoulli(), sixteen)[0] is None
    report = {"log_likelihood": -50.0, "elbo": -55.0, "stderr": {"log_likelihood": 2.0}}
    out = bits_report(report, pv.Normal(0.1), eight_bit)
    assert out["bits_per_dim"] == pytest.approx((50 + 3 * math.log(255)) / (3 * math.log(2)))
    assert out["bits_per_dim_stderr"] == pytest.approx(2 / (3 * math.log(2)))
    exact = dict(report, exact={"log_likelihood": -40.0, "elbo": -45.0, "stderr": {"log_likelihood": 1.0}})
    assert bits_report(exact, pv.DiscretizedLogistic(), eight_bit)["bits_per_dim"] == pytest.approx(
        40 / (3 * math.log(2)))  # a discrete latent's exact log p(x)
    assert bits_report(report, pv.Laplace(0.1), sixteen)["bits_per_dim"] is None


def _train_and_evaluate(tmp_path, data_spec, *flags):
    run = str(tmp_path / "run")
    assert main(["train", "--dataset", data_spec, "--binarize", "none", "--epochs", "4", "--latent-dim", "4",
                 "--hidden", "64", "--batch-size", "64", "--lr", "3e-3", "--out", run, "--quiet", *flags]) == 0
    assert main(["evaluate", run, "--num-samples", "20", "--max-images", "100", "--no-representation",
                 "--quiet"]) == 0
    with open(f"{run}/eval.json") as f:
        return json.load(f)


def test_a_model_trained_on_8bit_digits_reports_bits_per_dim(tmp_path):
    data = digits_8bit(tmp_path)
    report = _train_and_evaluate(tmp_path, data.name, "--arch", "conv", "--channels", "16,32",
                                 "--likelihood", "dlogistic")
    d = data.data_dim
    assert report["bits_per_dim"] == pytest.approx(-report["log_likelihood"] / (d * math.log(2)))
    assert report["bits_per_dim_elbo"] >= report["bits_per_dim"]  # L_S >= ELBO
    assert report["dequantization_nats_per_dim"] == 0 and report["bits_per_dim_basis"].startswith("exact")
    # sane: well below the 8 bits of a uniform pmf, above 0 (a pmf cannot exceed 1); 4 epochs give about 4
    assert 1.0 < report["bits_per_dim"] < 6.0


def test_a_density_gets_the_dequantisation_correction(tmp_path):
    data = digits_8bit(tmp_path)
    report = _train_and_evaluate(tmp_path, data.name, "--likelihood", "normal:0.1")
    d = data.data_dim
    expected = (-report["log_likelihood"] + d * math.log(255)) / (d * math.log(2))
    assert report["bits_per_dim"] == pytest.approx(expected) and report["bits_per_dim_basis"].startswith("approximate")

"""``pv.load_run`` reloads a run that ``pyro-vae train`` wrote: the model with its trained parameters, the
data, the config and the history."""

import statistics

import pyro
import pytest
import torch

import pyro_vae as pv
from pyro_vae.cli import main

FAST = ["--dataset", "digits", "--hidden", "32", "--latent-dim", "4", "--batch-size", "200", "--quiet",
        "--threads", "1"]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "r"
    assert main(["train", *FAST, "--epochs", "3", "--out", str(out)]) == 0
    return out


def test_load_run_scores_the_test_elbo_of_its_history(cli_run):
    loaded = pv.load_run(cli_run)
    assert loaded.epoch == 3 and [int(r["epoch"]) for r in loaded.history] == [1, 2, 3]
    assert loaded.config.dataset == "digits" and loaded.config.hidden == [32]
    assert loaded.data.x_test.shape == (360, 64) and not loaded.model.training
    assert scores_like_history(loaded.model, loaded)

    fresh = pv.load_run(cli_run, checkpoint=None)  # the same parameters again, not a new initialisation
    for (name, a), (_, b) in zip(loaded.model.state_dict().items(), fresh.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def scores_like_history(model, loaded):
    """Whether ``model``'s test ELBO matches the last one in the history within Monte-Carlo error: fit's
    test ELBO is one draw per image, so its error is estimated from the spread over 5 seeds."""
    elbos = []
    for seed in range(5):
        pyro.set_rng_seed(seed)
        elbos.append(pv.evaluate_elbo(model, loaded.data.x_test)["elbo"])
    tolerance = 4 * statistics.stdev(elbos) * (1 + 1 / 5) ** 0.5
    return abs(statistics.fmean(elbos) - loaded.history[-1]["test_elbo"]) <= tolerance


def test_an_untrained_model_fails_the_same_check(cli_run):
    """The check above can fail: the config's model freshly initialised is far from the history."""
    loaded = pv.load_run(cli_run)
    pyro.set_rng_seed(1)
    untrained = pv.experiment.build_model(loaded.config, loaded.data).eval()
    assert not scores_like_history(untrained, loaded)


def test_load_run_refuses_a_directory_without_a_run(tmp_path):
    with pytest.raises(pv.UserError, match="does not exist"):
        pv.load_run(tmp_path / "nothing")

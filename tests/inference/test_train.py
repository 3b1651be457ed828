import pytest
import torch

from pyro_vae import RunDir, evaluate_elbo, fit, make_elbo
from pyro_vae.inference.train import TrainingDiverged
from tests.helpers import small_vae


def test_svi_on_digits_improves_the_test_elbo(digits):
    vae = small_vae(hidden=(64,), z_dim=4)
    before = evaluate_elbo(vae, digits.x_test)["elbo"]
    history = fit(vae, digits, make_elbo("meanfield"), epochs=12, batch_size=64, lr=3e-3, quiet=True)
    assert len(history) == 12 and sum(1 for _ in digits.batches(64, torch.Generator())) * 12 == 276
    after = history[-1]["test_elbo"]
    assert after > before + 10, (before, after)
    assert history[-1]["test_reconstruction"] - history[-1]["test_kl"] == pytest.approx(after, abs=1e-3)
    assert history[-1]["test_kl"] > 0


@pytest.mark.parametrize("objective", ["meanfield", "jit-trace"])
def test_resume_is_exact(objective, digits, tmp_path):
    """2 epochs, then resume for 2 more == 4 epochs straight, parameter for parameter."""
    def train(epochs, run, resume=False, seed_model=0):
        vae = small_vae(seed=seed_model)
        fit(vae, digits, make_elbo(objective, 2), epochs=epochs, batch_size=100, seed=7, run=run,
            resume=resume, quiet=True)
        return vae

    import os

    os.makedirs(tmp_path / "a"), os.makedirs(tmp_path / "b")
    straight = train(4, RunDir(tmp_path / "a"))
    train(2, RunDir(tmp_path / "b"))
    resumed = train(4, RunDir(tmp_path / "b"), resume=True, seed_model=123)  # init is overwritten
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=False):
        assert torch.equal(a, b), name
    rows = RunDir(tmp_path / "b").read_history()
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["test_elbo"] == RunDir(tmp_path / "a").read_history()[-1]["test_elbo"]


@pytest.mark.parametrize("validation", [True, False])
def test_nan_loss_stops_and_keeps_last_good_checkpoint(validation, digits, tmp_path):
    import pyro

    pyro.enable_validation(validation)  # NaN shows as a distribution-argument error or as a NaN loss
    vae, run = small_vae(), RunDir(tmp_path)
    fit(vae, digits, make_elbo("trace"), epochs=1, batch_size=200, run=run, quiet=True)
    good = {k: v.clone() for k, v in vae.state_dict().items()}
    original = vae.decoder.forward
    vae.decoder.forward = lambda z: original(z) * float("nan")  # the next step diverges
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2, step 1; kept the checkpoint of epoch 1"):
        fit(vae, digits, make_elbo("trace"), epochs=3, batch_size=200, run=run, resume=True, quiet=True)
    state = run.load_checkpoint()
    assert state["epoch"] == 1 and all(torch.equal(state["model"][k], good[k]) for k in good)

import json
import os
import subprocess
import sys

import pytest
import torch

from pyro_vae.cli import main

FAST = ["--dataset", "digits", "--hidden", "32", "--latent-dim", "4", "--batch-size", "200", "--quiet"]


def run_cli(*args):
    return main([str(a) for a in args])


def test_train_writes_the_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("train", *FAST, "--epochs", 2, "--out", out) == 0
    assert sorted(os.listdir(out)) == [".lock", "checkpoint.pt", "config.json", "history.csv", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["test_elbo"] < 0
    assert summary["test_elbo"] == pytest.approx(summary["test_reconstruction"] - summary["test_kl"], abs=1e-6)
    config = json.loads((out / "config.json").read_text())
    assert config["hidden"] == [32] and config["latent_dim"] == 4 and config["dataset"] == "digits"
    assert capsys.readouterr().out.strip() == f"run directory: {out}"


def test_resume_continues_to_the_new_epoch_count(tmp_path):
    out = tmp_path / "run"
    run_cli("train", *FAST, "--epochs", 1, "--out", out)
    assert run_cli("train", "--resume", out, "--epochs", 3, "--quiet") == 0
    assert json.loads((out / "summary.json").read_text())["epochs"] == 3
    assert json.loads((out / "config.json").read_text())["epochs"] == 3


def _error(capsys, *args):
    code = run_cli(*args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("pyro-vae: error: ") and "\n" not in err, err
    return err


def test_error_paths_are_one_line_and_nonzero(tmp_path, capsys):
    out = tmp_path / "run"
    assert "choose one of mnist5k" in _error(capsys, "train", *FAST, "--dataset", "cifar", "--out", out)
    assert "bernoulli|normal:SCALE" in _error(capsys, "train", *FAST, "--likelihood", "poisson", "--out", out)
    assert "choose one of normal" in _error(capsys, "train", *FAST, "--prior", "laplace", "--out", out)
    assert "trace, meanfield" in _error(capsys, "train", *FAST, "--elbo", "exact", "--out", out)
    assert "--binarize dynamic" in _error(capsys, "train", *FAST, "--binarize", "none", "--out", out)
    assert "--latent-dim must be a positive" in _error(capsys, "train", *FAST, "--latent-dim", 0, "--out", out)
    assert "--epochs must be a positive" in _error(capsys, "train", *FAST, "--epochs", -1, "--out", out)
    assert not out.exists()  # nothing was created by failed starts
    assert "does not exist" in _error(capsys, "train", "--resume", tmp_path / "nothing")


def test_library_parameters_become_flags_only_on_the_command_line(tmp_path, capsys):
    """The library names its parameters; the command line says the flag a user types instead."""
    out = tmp_path / "run"
    assert "drop --num-particles 2" in _error(capsys, "train", *FAST, "--elbo", "iwae:3", "--num-particles", 2,
                                              "--out", out)
    err = _error(capsys, "train", *FAST, "--model", "vae2", "--elbo", "meanfield", "--out", out)
    assert "another order" in err and "use --elbo trace" in err
    assert "--lr must be a positive number" in _error(capsys, "train", *FAST, "--lr", "inf", "--out", out)
    assert "--seed must be 0 or a positive integer" in _error(capsys, "train", *FAST, "--seed", -1, "--out", out)
    err = _error(capsys, "train", *FAST, "--dataset", "kmnist", "--out", out)
    assert "needs --data-dir DIR" in err and "(or --download when online)" in err
    err = _error(capsys, "train", *FAST, "--elbo", "iwae-dreg:3", "--kl-warmup", 2, "--out", out)
    assert "use --beta 1 and --kl-warmup 0, or --elbo iwae:3" in err  # refused before the run directory exists
    assert not out.exists()


def test_existing_and_corrupt_runs_are_not_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    run_cli("train", *FAST, "--epochs", 1, "--out", out)
    before = (out / "checkpoint.pt").read_bytes()
    assert "already holds a run" in _error(capsys, "train", *FAST, "--out", out)
    assert "cannot change on --resume" in _error(capsys, "train", "--resume", out, "--latent-dim", 8)
    assert (out / "checkpoint.pt").read_bytes() == before

    (out / "checkpoint.pt").write_bytes(before[: len(before) // 2])  # truncated
    assert "not a readable pyro_vae checkpoint" in _error(capsys, "train", "--resume", out, "--epochs", 2)
    torch.save({"weights": torch.zeros(2)}, out / "checkpoint.pt")  # foreign
    assert "not a pyro_vae checkpoint" in _error(capsys, "train", "--resume", out, "--epochs", 2)
    (out / "config.json").write_text("{ not json")
    assert "not valid JSON" in _error(capsys, "train", "--resume", out)


def test_checkpoint_load_never_runs_code(tmp_path, capsys):
    """A pickle that would execute code on load is refused by weights_only=True."""
    out = tmp_path / "run"
    run_cli("train", *FAST, "--epochs", 1, "--out", out)

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"format": "pyro_vae.checkpoint/1", "x": Evil()}, out / "checkpoint.pt")
    assert "not a readable" in _error(capsys, "train", "--resume", out, "--epochs", 2)
    assert not (tmp_path / "pwned").exists()


def test_console_script_help_documents_every_flag():
    result = subprocess.run([sys.executable, "-m", "pyro_vae.cli", "train", "--help"],
                            capture_output=True, text=True, check=True)
    for flag in ["--dataset", "--data-dir", "--binarize", "--model", "--prior", "--likelihood", "--posterior",
                 "--elbo", "--num-particles", "--latent-dim", "--hidden", "--epochs", "--batch-size", "--lr",
                 "--seed", "--device", "--out", "--resume", "--quiet"]:
        assert flag in result.stdout


def test_bad_input_exits_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pyro_vae.cli", "train", "--dataset", "nope",
                             "--out", str(tmp_path / "r")], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_load_run_restores_the_trained_model(tmp_path):
    from pyro_vae.experiment import load_run
    from pyro_vae.inference.train import evaluate_elbo

    out = tmp_path / "run"
    run_cli("train", *FAST, "--epochs", 2, "--out", out)
    loaded = load_run(out)
    assert loaded.epoch == 2 and loaded.config.latent_dim == 4 and loaded.data.name == "digits"
    # same parameters: the test ELBO matches the one recorded in training (up to its sampling noise)
    recorded = loaded.history[-1]["test_elbo"]
    again = evaluate_elbo(loaded.model, loaded.data.x_test)["elbo"]
    assert abs(again - recorded) < 0.02 * abs(recorded)

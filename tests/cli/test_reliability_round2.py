"""Reliability, round two: bounded resources, nothing written before validation, a run's record that
stays true, divergence that is noticed, and the right message for each case a new user tried.

``CASES`` is the table of refusals (exit 2, one line on stderr, no traceback, the folder pointed at
byte-identical afterwards or never created); the tests below it cover the cases whose right result
is a behaviour rather than a refusal.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from pyro_vae.cli import main
from tests.helpers import copy_run

FAST = ["--dataset", "digits", "--hidden", "32", "--latent-dim", "4", "--batch-size", "200", "--quiet",
        "--threads", "1"]
EVAL = ["--num-samples", "10", "--max-images", "20", "--no-representation", "--threads", "1"]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli(capsys, *args):
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(folder):
    """Every file under ``folder`` (hidden ones included) and its bytes; None when it does not exist."""
    if not os.path.isdir(folder):
        return None
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, folder)] = f.read()
    return files


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A digits VAE (2 epochs), a mnist5k VAE and a digits mixture (1 epoch each), trained once."""
    root = tmp_path_factory.mktemp("runs")
    assert main(["train", *FAST, "--epochs", "2", "--out", str(root / "vae")]) == 0
    assert main(["train", *FAST[2:], "--dataset", "mnist5k", "--epochs", "1", "--out", str(root / "mnist5k")]) == 0
    assert main(["train", *FAST, "--model", "mixture:5", "--epochs", "1", "--out", str(root / "mixture")]) == 0
    return root


def _new(*args):
    def case(tmp_path, runs):
        return ["train", *FAST, "--epochs", 1, *args, "--out", tmp_path / "new"], tmp_path / "new"
    return case


def _on_run(command, *args, name="vae"):
    def case(tmp_path, runs):
        run = copy_run(runs, tmp_path, name)
        return [command, run, *args], run
    return case


def _resume(*args):
    def case(tmp_path, runs):
        run = copy_run(runs, tmp_path)
        return ["train", "--resume", run, *args], run
    return case


def _config_without(key):
    def case(tmp_path, runs):
        run = copy_run(runs, tmp_path)
        config = json.loads((run / "config.json").read_text())
        del config[key]
        (run / "config.json").write_text(json.dumps(config))
        return ["evaluate", run, *EVAL], run
    return case


def _corrupt_checkpoint(tmp_path, runs):
    run = copy_run(runs, tmp_path)
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])  # truncated, as a full disk or a kill leaves it
    return ["evaluate", run, *EVAL], run


def _negative_npz(tmp_path, runs):
    grey = np.random.default_rng(0).random((40, 8, 8))
    grey[0, 0, :2] = 0.0, 1.0
    path = tmp_path / "centred.npz"
    np.savez(path, x_train=-grey, x_test=-grey[:5])  # floats in [-1, 0]
    return ["train", *FAST, "--dataset", f"npz:{path}", "--epochs", 1, "--out", tmp_path / "new"], tmp_path / "new"


CASES = {
    # 1-5: resources, refused before any work with the estimate and what to lower
    "1 evaluate --num-samples 1e12": (_on_run("evaluate", "--num-samples", 10**12, "--threads", 1),
                                      r"evaluate would need about .* PB of memory at its peak \(the log weights of 100 "
                                      r"images x 1,000,000,000,000 draws .*more than any machine can hold .*; lower "
                                      r"--num-samples 1000000000000 or --batch-size 100$"),
    "2 evaluate --ais-chains 1e10": (_on_run("evaluate", *EVAL, "--ais-steps", 10, "--ais-chains", 10**10),
                                     r"evaluate needs about .* TB of memory .*AIS's 10,000,000,001 chains.*more than "
                                     r"the .* available; lower --ais-chains 10000000000$"),
    "3 evaluate --ais-steps 1e12": (_on_run("evaluate", *EVAL, "--ais-steps", 10**12),
                                    r"AIS's schedule of 1,000,000,000,000 steps .*lower --ais-steps 1000000000000$"),
    "3b evaluate --ais-steps 1e8 is days of work": (_on_run("evaluate", *EVAL, "--ais-steps", 10**8, "--ais-chains",
                                                            1000, "--ais-images", 1),
                                                    r"evaluate would do about .* multiply-adds, about .* on one core, "
                                                    r"above the ceiling .* or give --force to run it anyway$"),
    "4 plot --grid-size 1000000": (_on_run("plot", "--grid-size", 10**6, "--threads", 1),
                                   r"plot would need about .* \(the manifold's 1,000,000,000,000 decoded images .*more "
                                   r"than any machine can hold .*lower --grid-size 1000000$"),
    "4b plot --num-images 10**6": (_on_run("plot", "--num-images", 10**6, "--threads", 1),
                                   r"pixels wide, more than the 8,388,607 a PNG canvas takes; lower --num-images or "
                                   r"--dpi$"),
    "5 train --hidden 3000000": (_new("--hidden", 3000000),
                                 r"training needs about .* GB .*; lower --hidden or --latent-dim$"),
    "5 train --model mixture:5000000": (_new("--model", "mixture:5000000"),
                                        r"training (would )?needs? about .* TB .*; lower K in --model mixture:5000000"),
    "train --epochs 1e9 is days of work": (_new("--epochs", 10**9),
                                           r"training would do about .* multiply-adds.*; lower --epochs, or give "
                                           r"--force"),
    # 6: every argument and spec is checked before the run directory exists
    "6 --keep-epochs banana": (_new("--keep-epochs", "banana"), r"--keep-epochs takes 'stages' or positive epochs"),
    "6 --lr-schedule warp:9": (_new("--lr-schedule", "warp:9"), r"unknown learning-rate schedule 'warp:9'"),
    "6 --keep-epochs stages, constant schedule": (_new("--keep-epochs", "stages"),
                                                  r"--keep-epochs stages needs a staged --lr-schedule"),
    "6 --elbo iwae:0": (_new("--elbo", "iwae:0"), r"iwae"),
    "6 resume --lr-schedule warp:9": (_resume("--epochs", 3, "--lr-schedule", "warp:9"),
                                      r"unknown learning-rate schedule 'warp:9'"),
    # 7: other data than the run's
    "7 evaluate --dataset digits on a mnist5k run": (_on_run("evaluate", *EVAL, "--dataset", "digits", name="mnist5k"),
                                                     r"--dataset digits does not fit the run's model: rows of 64 "
                                                     r"values "
                                                     r"\(8, 8\).*give the same data the run was trained on"),
    # 10: advice that fits the data
    "10 npz of negative floats": (_negative_npz, r"floats in \[-1, 0\]; .*negative values are not .*e\.g\. x \+ 1\)"),
    # 12: a resume may not change what defines the objective
    "12 resume --batch-size": (_resume("--epochs", 3, "--batch-size", 50),
                               r"--batch-size cannot change on --resume: .*train a new run with --out NEW_DIR"),
    "12 resume --beta": (_resume("--epochs", 3, "--beta", 0.5), r"--beta cannot change on --resume"),
    # 15: a missing setting is an error, never a default
    "15 config.json without dataset": (_config_without("dataset"),
                                       r"config.json: config lacks 'dataset' \(a new run writes \"mnist5k\"\); a "
                                       r"missing "
                                       r"setting is not filled in with a default"),
    # 16: a corrupt checkpoint, said in whole words
    "16 truncated checkpoint": (_corrupt_checkpoint, r"checkpoint.pt is not a readable pyro_vae checkpoint \(truncated "
                                r"or "
                                r"foreign file: [^()]*\); restore it, or train a new run \(--out NEW_DIR\)$"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_case_is_one_line_exit_2_and_changes_nothing(case, runs, tmp_path, capsys):
    make, message = CASES[case]
    argv, folder = make(tmp_path, runs)
    before = snapshot(folder)
    code, _, err = cli(capsys, *argv)
    assert code == 2, (code, err)
    assert err.startswith("pyro-vae: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(message, err.strip()), err
    assert snapshot(folder) == before  # None == None: nothing was created


# --- 9: a resume that fails on a full disk leaves config.json as it was -------------------------------

def test_resume_on_a_full_disk_rewrites_nothing(runs, tmp_path, capsys, monkeypatch):
    import errno

    run = copy_run(runs, tmp_path)
    before = snapshot(run)
    real_fsync = os.fsync

    def fsync(fd):
        if os.fstat(fd).st_size > 10_000:  # the checkpoint: the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    code, _, err = cli(capsys, "train", "--resume", run, "--epochs", 3, "--lr", 0.01, "--quiet")
    assert code == 2 and err.count("\n") == 1 and f"then continue it with --resume {run}" in err, err
    assert snapshot(run) == before  # config.json too: it still describes the checkpoint


# --- 12: a resume that changes the learning rate is recorded -------------------------------------------

def test_a_resume_with_another_learning_rate_is_recorded_per_epoch(runs, tmp_path, capsys):
    run = copy_run(runs, tmp_path)
    assert cli(capsys, "train", "--resume", run, "--epochs", 4, "--lr", 0.01, "--clip-norm", 5, "--quiet")[0] == 0
    config = json.loads((run / "config.json").read_text())
    assert config["lr"] == 0.01 and config["epochs"] == 4
    assert config["changes"] == [{"epoch": 3, "settings": {"clip_norm": [None, 5.0], "epochs": [2, 4],
                                                           "lr": [0.001, 0.01]}}]
    rows = (run / "history.csv").read_text().splitlines()
    header = rows[0].split(",")
    lr, clip = header.index("lr"), header.index("clip_norm")
    assert [(r.split(",")[lr], r.split(",")[clip]) for r in rows[1:]] == [
        ("0.001", "nan"), ("0.001", "nan"), ("0.01", "5.0"), ("0.01", "5.0")]


def test_a_history_of_an_older_version_gains_the_columns_on_resume(runs, tmp_path, capsys):
    from pyro_vae.experiment.runs import RunDir

    run = copy_run(runs, tmp_path)
    lines = (run / "history.csv").read_text().splitlines()
    old = [",".join(line.split(",")[:-2]) for line in lines]  # without lr and clip_norm
    (run / "history.csv").write_text("\n".join(old) + "\n")
    RunDir(run).write_history(RunDir(run).read_history() + [{**RunDir(run).read_history()[-1], "lr": 0.1}])
    rows = (run / "history.csv").read_text().splitlines()
    assert rows[0].endswith(",lr") and rows[1].endswith(",") and rows[-1].endswith(",0.1")


# --- 11, 13: plot says what it skipped, and never suggests a command that refuses the run -------------

def test_plot_of_a_one_image_test_set_lists_the_interpolations_as_skipped(tmp_path, capsys):
    grey = np.random.default_rng(0).integers(0, 256, (40, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "one.npz", x_train=grey, x_test=grey[:1])
    run = tmp_path / "one"
    assert cli(capsys, "train", *FAST, "--dataset", f"npz:{tmp_path / 'one.npz'}", "--epochs", 1, "--out", run)[0] == 0
    code, out, _ = cli(capsys, "plot", run, "--threads", 1)
    assert code == 0
    assert "skipped interpolations.png: needs at least 2 test images (a pair of codes), the test split has 1" in out


def test_plot_of_a_mixture_does_not_suggest_compare_kl(runs, tmp_path, capsys):
    run = copy_run(runs, tmp_path, "mixture")
    code, out, _ = cli(capsys, "plot", run, "--threads", 1)
    assert code == 0 and "compare-kl" not in out
    assert "skipped kl_variance_ratio.png: a discrete latent's KL and gap are exact sums" in out


# --- 14: a loss that grows by orders of magnitude is said, once ---------------------------------------

def test_a_diverging_loss_warns_once_naming_lr_and_clip_norm(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pyro_vae", "train", *FAST, "--lr", "1e6", "--epochs", "3", "--out",
                             str(tmp_path / "r")], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": ROOT})
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, result.stderr
    assert re.fullmatch(r"pyro-vae: warning: DivergenceWarning: the training loss grew from \S+ to \S+ nats per data "
                        r"point by epoch \d+, step \d+: training is diverging; lower --lr 1e\+06 or set --clip-norm "
                        r"NORM "
                        r"\(gradient clipping\)", warnings[0]), warnings[0]


def test_an_ordinary_run_does_not_warn(runs):
    history = (runs / "vae" / "history.csv").read_text()
    assert "nan" not in history.split("\n")[1].split(",")[1]  # the fixture trained without warnings (errors in tests)


# --- 18, 19: what evaluate says and covers ---------------------------------------------------------------

def test_ais_that_never_moved_does_not_say_the_bounds_agree(runs, tmp_path, capsys):
    run = copy_run(runs, tmp_path)
    code, out, _ = cli(capsys, "evaluate", run, *EVAL, "--ais-steps", 1, "--ais-chains", 2, "--ais-images", 5)
    verdict = json.loads((run / "eval.json").read_text())["verdict"]["ais"]
    assert code == 0 and verdict["level"] == "inconclusive", verdict
    assert "made no HMC move" in verdict["message"] and "agree" not in verdict["message"]


def test_max_images_limits_the_code_report_too(runs, tmp_path, capsys):
    run = copy_run(runs, tmp_path)
    code, _, _ = cli(capsys, "evaluate", run, "--num-samples", 10, "--max-images", 20, "--threads", 1, "--quiet")
    report = json.loads((run / "eval.json").read_text())
    assert code == 0 and report["num_images"] == 20 and report["code_rows"] == 20
    assert report["probe_test_rows"] == 20 and report["probe_train_rows"] == 80  # 1437 train / 360 test, in proportion


# --- 20: compare-kl's defaults -------------------------------------------------------------------------

def test_compare_kl_leaves_the_k_500_snr_point_and_the_outcome_to_be_asked_for():
    from pyro_vae.cli.parser import make_parser

    args = make_parser().parse_args(["compare-kl", "DIR"])
    assert args.snr_k == [1, 5, 50] and args.outcome_epochs is None


# --- issue 22: portable data names, and no flags in the library ----------------------------------------

def test_a_relative_npz_is_stored_relative_to_the_run_and_read_from_anywhere(tmp_path, capsys, monkeypatch):
    grey = np.random.default_rng(0).integers(0, 256, (40, 8, 8), dtype=np.uint8)
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "d.npz", x_train=grey, x_test=grey[:5])
    monkeypatch.chdir(tmp_path)
    assert cli(capsys, "train", *FAST, "--dataset", "npz:data/d.npz", "--epochs", 1, "--out", "runs/r")[0] == 0
    assert json.loads((tmp_path / "runs" / "r" / "config.json").read_text())["dataset"] == "npz:../../data/d.npz"
    monkeypatch.chdir(tmp_path / "data")  # elsewhere
    assert cli(capsys, "evaluate", tmp_path / "runs" / "r", *EVAL, "--quiet")[0] == 0


def test_mnist_reads_an_npz_in_the_data_folder(tmp_path):
    from pyro_vae.data import load_dataset

    grey = np.random.default_rng(0).integers(0, 256, (40, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=grey, y_train=np.arange(40) % 10, x_test=grey[:5], y_test=np.arange(5))
    data = load_dataset("mnist", data_dir=str(tmp_path))
    assert data.name == "mnist" and data.x_train.shape == (40, 784)


def test_the_library_never_speaks_of_flags():
    """Only pyro_vae/cli/ may name a command-line flag; every string of the other layers (messages,
    docstrings, help texts of registered families) names parameters."""
    import ast

    package = os.path.join(ROOT, "pyro_vae")
    found = []
    for folder, _, names in os.walk(package):
        if os.path.relpath(folder, package).split(os.sep)[0] == "cli":
            continue
        for name in names:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            with open(path) as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):  # messages, docstrings, help texts alike
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]+", node.value):
                        found.append(f"{os.path.relpath(path, ROOT)}:{node.lineno}: {flag}")
    assert not found, "\n".join(found)

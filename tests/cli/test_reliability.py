"""Issue 12: every bad input or fault is a one-line error (exit 2, no traceback) that changes nothing;
no silent wrong data, no silent overwrite, no run directory that nothing can use again.

``CASES`` is the table of refusals: each builds its input, runs the command in-process and checks the
exit status, that stderr is one line naming the problem, and that the run directory it was pointed
at is byte-identical afterwards. The tests below it cover what is not a refusal (a run resumed from
its config, stale result files, a closed pipe, Ctrl-C, a second writer, the umask, warnings).
"""

import errno
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from pyro_vae.cli import main
from pyro_vae.experiment.config import TrainConfig
from tests.helpers import copy_run

FAST = ["--dataset", "digits", "--hidden", "32", "--latent-dim", "4", "--batch-size", "200", "--quiet",
        "--threads", "1"]
EVAL = ["--num-samples", "10", "--max-images", "20", "--no-representation", "--threads", "1"]


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(folder):
    """Every file of ``folder`` (hidden ones included) and its bytes."""
    if not os.path.isdir(folder):
        return None
    return {name: pathlib.Path(folder, name).read_bytes() for name in sorted(os.listdir(folder))}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A 2-epoch VAE run and a 1-epoch autoencoder run, trained once for the module."""
    root = tmp_path_factory.mktemp("runs")
    assert main(["train", *FAST, "--epochs", "2", "--out", str(root / "vae")]) == 0
    assert main(["train", *FAST, "--model", "ae", "--epochs", "1", "--out", str(root / "ae")]) == 0
    return root


def npz(tmp_path, **arrays):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return f"npz:{path}"


GREY = np.random.default_rng(0).integers(0, 256, (40, 8, 8), dtype=np.uint8)


# --- the table: (inputs) -> exit 2, one line, nothing changed ---------------------------------------
# Each case returns (argv, folder that must stay byte-identical or must not come into being).

def _new(tmp_path, *args):
    return ["train", *FAST, "--epochs", 1, *args, "--out", tmp_path / "new"], tmp_path / "new"


def _on_run(command, *args, name="vae"):
    def case(tmp_path, base_run):
        run = copy_run(base_run, tmp_path, name)
        return [command, run, *args], run
    return case


def _edited_latent_dim(tmp_path, base_run):
    run = copy_run(base_run, tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "latent_dim": 8}))
    return ["train", "--resume", run, "--epochs", 3, "--quiet"], run


def _foreign_directory(tmp_path, base_run):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "history.csv").write_text("my own numbers\n")
    (folder / "notes.txt").write_text("keep me\n")
    return ["train", *FAST, "--epochs", 1, "--out", folder], folder


def _under_a_file(tmp_path, base_run):
    (tmp_path / "file").write_text("x")
    return ["train", *FAST, "--out", tmp_path / "file" / "sub"], tmp_path / "file"


CASES = {
    # silent wrong data
    "npz floats 0..16": (lambda t, b: _new(t, "--dataset", npz(t, x_train=GREY / 16.0, x_test=GREY[:5] / 16.0)),
                         r"x_train holds floats in \[0, 15\.9375\].*uint8"),
    "npz two channels (N, 2, H, W)": (lambda t, b: _new(t, "--dataset", npz(t, x_train=np.zeros((4, 2, 8, 8)),
                                                                             x_test=np.zeros((2, 2, 8, 8)))),
                                      r"x_train has shape \(4, 2, 8, 8\).*\(N, 3, H, W\) or \(N, H, W, 3\) colour"),
    "masking:1.5 with vae": (lambda t, b: _new(t, "--noise", "masking:1.5"),
                             r"--noise masking:NU must be a probability in \(0, 1\), got 1\.5"),
    "masking:1.5 with denoising-ae": (lambda t, b: _new(t, "--model", "denoising-ae", "--noise", "masking:1.5"),
                                      r"--noise masking:NU must be a probability"),
    "--sparsity with vae": (lambda t, b: _new(t, "--sparsity", 2), "--sparsity applies only to --model sparse-ae"),
    "--data-dir with digits": (lambda t, b: _new(t, "--data-dir", t), "--data-dir applies only to --dataset mnist"),
    "--hidden 400,,200": (lambda t, b: _new(t, "--hidden", "400,,200"), "positive comma-separated sizes"),
    # lost work
    "--out a directory of other files": (_foreign_directory, r"holding other files \(history.csv, notes.txt\)"),
    # dead ends
    "--lr inf": (lambda t, b: _new(t, "--lr", "inf"), "--lr must be a positive number, got inf"),
    "--resume past --epochs": (lambda t, b: (["train", "--resume", copy_run(b, t), "--epochs", 1], t / "vae"),
                               r"already at epoch 2, past --epochs 1; nothing was changed"),
    "config edited to another latent_dim": (_edited_latent_dim, "checkpoint does not fit the model"),
    # tracebacks before
    "--seed -1": (lambda t, b: _new(t, "--seed", -1), "--seed must be 0 or a positive integer"),
    "--out FILE/sub": (_under_a_file, "is a file, not a directory"),
    "npz of strings": (lambda t, b: _new(t, "--dataset", npz(t, x_train=np.full((4, 4), "a"),
                                                              x_test=np.full((2, 4), "a"))),
                       "x_train has dtype <U1"),
    "labels of the wrong length": (lambda t, b: _new(t, "--dataset", npz(t, x_train=GREY, x_test=GREY[:5],
                                                                          y_train=np.arange(30))),
                                   r"y_train has shape \(30,\); it needs one label per image, shape \(40,\)"),
    "float labels": (lambda t, b: _new(t, "--dataset", npz(t, x_train=GREY, x_test=GREY[:5], y_test=np.arange(5) / 2)),
                     "y_test holds non-integer values"),
    "compare-kl on an autoencoder": (_on_run("compare-kl", "--repeats", 2, name="ae"),
                                     "the KL study needs a stochastic posterior, but --model ae has a point-mass code"),
    "--num-particles 100000000": (lambda t, b: _new(t, "--num-particles", 100000000),
                                  r"training needs about .* TB .*a training step.*; lower --num-particles 100000000 or "
                                  "--batch-size 200"),
    "--elbo iwae:100000000": (lambda t, b: _new(t, "--elbo", "iwae:100000000"),
                              r"needs about .* GB .*; lower K in --elbo iwae:100000000 or --batch-size 200"),
    "evaluate --chunk-size 100000000": (_on_run("evaluate", "--chunk-size", 100000000, "--num-samples", 100000000),
                                        r"evaluate needs .* TB .*an evaluation chunk.*lower --chunk-size 100000000"),
    "evaluate --seed -1": (_on_run("evaluate", "--seed", -1, *EVAL), "--seed must be 0 or a positive integer"),
    "an unknown flag": (lambda t, b: _new(t, "--nope", 3), r"unrecognized arguments: --nope 3 \(see pyro-vae"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refusals_are_one_line_exit_2_and_change_nothing(case, base_run, tmp_path, capsys):
    make, message = CASES[case]
    argv, folder = make(tmp_path, base_run)
    before = snapshot(folder)
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse's own errors exit from inside parse_args
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, (code, err)
    assert err.startswith("pyro-vae") and err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(message, err), err
    assert snapshot(folder) == before  # None == None: nothing was created


# --- read-only directories and a full disk ---------------------------------------------------------

@pytest.mark.parametrize("command", [["evaluate", *EVAL], ["plot", "--threads", "1"], ["compare-kl", "--repeats", 2],
                                     ["train", "--epochs", 3, "--resume"]])
def test_a_read_only_run_directory_is_refused_first(command, base_run, tmp_path, capsys, monkeypatch):
    """Before: OSError 30 (read-only file system) with a traceback, after the whole computation."""
    run = copy_run(base_run, tmp_path)
    before = snapshot(run)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if str(path) == str(run) and mode == os.W_OK
                        else real_access(path, mode, **kw))
    argv = [*command[:1], *(command[1:] + [run] if command[0] == "train" else [run, *command[1:]])]
    code, _, err = cli(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and f"{run} is not writable" in err, err
    assert snapshot(run) == before


def test_new_run_under_a_read_only_directory_is_refused(tmp_path, capsys, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if str(path) == str(tmp_path) and mode == os.W_OK
                        else real_access(path, mode, **kw))
    code, _, err = cli(capsys, "train", *FAST, "--out", tmp_path / "new")
    assert code == 2 and "is not writable" in err and not (tmp_path / "new").exists()


def test_full_disk_during_a_checkpoint_names_the_file_and_keeps_the_last_one(base_run, tmp_path, capsys, monkeypatch):
    """Before: a traceback. Now: which file, that the previous checkpoint is intact, how to go on."""
    run = copy_run(base_run, tmp_path)
    before = (run / "checkpoint.pt").read_bytes()
    real_fsync = os.fsync

    def fsync(fd):  # the disk fills up when the next checkpoint (the only large file) is written
        if os.fstat(fd).st_size > 10_000:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    code, _, err = cli(capsys, "train", "--resume", run, "--epochs", 3, "--quiet")
    assert code == 2 and err.count("\n") == 1, err
    assert f"cannot write {run}/checkpoint.pt (No space left on device); the checkpoint of the last saved epoch " \
           f"is intact: make room, then continue it with --resume {run}" in err
    assert (run / "checkpoint.pt").read_bytes() == before
    assert not [n for n in os.listdir(run) if n.startswith(".tmp-")]  # no orphan left behind
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert cli(capsys, "train", "--resume", run, "--epochs", 3, "--quiet")[0] == 0  # and it does go on


# --- dead ends: every stopped run can continue ----------------------------------------------------

def test_a_run_stopped_before_its_first_epoch_resumes_from_its_config(base_run, tmp_path, capsys):
    """Before: --resume said 'no epoch finished, use a new --out' and --out said 'continue with --resume'."""
    run = copy_run(base_run, tmp_path)
    for name in ("checkpoint.pt", "history.csv", "summary.json"):
        (run / name).unlink()  # as a run stopped (SIGINT, NaN, full disk) during its first epoch leaves it
    code, _, err = cli(capsys, "train", *FAST, "--out", run)
    assert code == 2 and f"continue it with --resume {run}" in err
    code, out, _ = cli(capsys, "train", "--resume", run, "--epochs", 2)
    assert code == 0 and "no epoch of the run" in out and "training it from the start" in out
    # the same numbers as the uninterrupted run with this config
    history = (run / "history.csv").read_text().splitlines()
    original = (base_run / "vae" / "history.csv").read_text().splitlines()
    column = history[0].split(",").index("test_elbo")
    assert [r.split(",")[column] for r in history] == [r.split(",")[column] for r in original]


def test_the_divergence_message_advises_a_resume_that_works(tmp_path, capsys):
    run = tmp_path / "nan"
    code, _, err = cli(capsys, "train", *FAST, "--lr", "1e30", "--epochs", 2, "--out", run)
    assert code == 3 and "kept no checkpoint; resume with a lower --lr LR" in err, err
    assert cli(capsys, "train", "--resume", run, "--lr", "1e-3", "--quiet")[0] == 0
    assert json.loads((run / "summary.json").read_text())["epochs"] == 2


def test_resume_at_the_last_epoch_says_so_and_changes_nothing(base_run, tmp_path, capsys):
    run = copy_run(base_run, tmp_path)
    before = snapshot(run)
    code, out, err = cli(capsys, "train", "--resume", run, "--epochs", 2)
    assert code == 0 and "has finished its 2 epochs; nothing to train, nothing changed" in out and err == ""
    assert snapshot(run) == before


def test_config_json_round_trips_every_value(tmp_path):
    config = TrainConfig(dataset="npz:/x.npz", data_dir="/d", download=True, binarize="static", model="denoising-ae",
                         likelihood="normal:0.1", latent_dim=3, hidden=[7, 5], activation="tanh", elbo="iwae:3",
                         beta=0.5, kl_warmup=2, sparsity=0.3, noise="gaussian:0.2", contraction=0.2, epochs=4,
                         batch_size=9, lr=2e-4, lr_schedule="cosine", adam_eps=1e-4, betas=[0.8, 0.99],
                         clip_norm=5.0, seed=3, threads=1).validate()
    from pyro_vae.experiment.runs import RunDir
    run = RunDir(tmp_path / "r")
    run.create(config)
    run.unlock()
    assert run.config() == config


# --- stale result files, figures that say their epoch ---------------------------------------------

def test_plot_skips_figures_of_an_eval_json_from_another_epoch(base_run, tmp_path, capsys):
    """Before: plot drew eval.json of epoch 25 beside the model of epoch 40 without a word."""
    run = copy_run(base_run, tmp_path)
    assert cli(capsys, "evaluate", run, *EVAL, "--quiet")[0] == 0
    assert cli(capsys, "train", "--resume", run, "--epochs", 3, "--quiet")[0] == 0
    code, out, _ = cli(capsys, "plot", run, "--threads", "1", "--khat-images", 5)
    assert code == 0 and not (run / "bound_tightness.png").exists() and not (run / "khat.png").exists()
    assert f"skipped bound_tightness.png: eval.json was made at epoch 2, the checkpoint is at epoch 3: rerun " \
           f"pyro-vae evaluate {run}" in out


def test_every_figure_states_its_epoch(base_run, tmp_path, capsys):
    from pyro_vae.cli.figures import make_figures
    from pyro_vae.experiment import load_run

    run = copy_run(base_run, tmp_path)
    assert cli(capsys, "evaluate", run, *EVAL, "--quiet")[0] == 0
    figures, _ = make_figures(load_run(run), khat_images=5)
    assert {"training_curves.png", "bound_tightness.png", "khat.png"} <= set(figures)
    for name, fig in figures.items():
        assert any("epoch 2" in t.get_text() for t in fig.texts), name


def test_plot_of_an_autoencoder_does_not_recommend_compare_kl(base_run, tmp_path, capsys):
    run = copy_run(base_run, tmp_path, "ae")
    code, out, _ = cli(capsys, "plot", run, "--threads", "1")
    assert code == 0 and "compare-kl" not in out and "kl_variance_ratio.png: a point-mass code has no KL" in out


def test_plot_of_a_one_row_test_set_skips_what_needs_two(tmp_path, capsys):
    """Before: IndexError in the latent scatter."""
    data = npz(tmp_path, x_train=GREY, x_test=GREY[:1], y_train=np.arange(40) % 3, y_test=np.array([1]))
    run = tmp_path / "one"
    assert cli(capsys, "train", *FAST, "--dataset", data, "--epochs", 1, "--out", run)[0] == 0
    code, out, err = cli(capsys, "plot", run, "--threads", "1")
    assert code == 0 and "skipped latent_scatter.png: needs at least 2 test images, the test split has 1" in out
    assert (run / "reconstructions.png").exists()


# --- the run-directory lock, orphaned temporary files, file modes ---------------------------------

HOLD_LOCK = "import sys, time; from pyro_vae.experiment.runs import RunDir; RunDir(sys.argv[1]).lock(); " \
            "print('locked', " \
            "flush=True); time.sleep(60)"


def test_a_second_writer_is_refused_with_the_holders_pid_and_readers_still_work(base_run, tmp_path, capsys):
    """Before: two `train --resume` at once both exited 0, one overwriting the other's epochs."""
    run = copy_run(base_run, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(run)
        code, _, err = cli(capsys, "train", "--resume", run, "--epochs", 3)
        assert code == 2 and err.count("\n") == 1
        assert f"{run} is being trained by process {holder.pid}" in err, err
        assert snapshot(run) == before
        assert cli(capsys, "evaluate", run, *EVAL, "--quiet")[0] == 0  # readers take no lock
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert cli(capsys, "train", "--resume", run, "--epochs", 3, "--quiet")[0] == 0  # the lock died with it


def test_orphaned_temporary_files_are_removed_and_live_ones_kept(base_run, tmp_path, capsys):
    run = copy_run(base_run, tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / f".tmp-{dead.pid}-abcd1234").write_bytes(b"x" * 1000)  # a killed writer's
    (run / ".tmp-k2_9xq0p").write_bytes(b"x")  # an older version's name (no PID)
    (run / f".tmp-{os.getpid()}-live_one").write_bytes(b"x")  # a live writer's (this process)
    (run / ".tmp-notes.txt").write_bytes(b"x")  # not ours
    assert cli(capsys, "plot", run, "--threads", "1", "--quiet")[0] == 0
    assert sorted(n for n in os.listdir(run) if n.startswith(".tmp-")) == [f".tmp-{os.getpid()}-live_one",
                                                                         ".tmp-notes.txt"]


def test_run_files_follow_the_umask(tmp_path, capsys):
    """Before: 0600 (tempfile.mkstemp's mode) whatever the umask."""
    old = os.umask(0o022)
    try:
        assert cli(capsys, "train", *FAST, "--epochs", 1, "--out", tmp_path / "r")[0] == 0
    finally:
        os.umask(old)
    modes = {name: os.stat(tmp_path / "r" / name).st_mode & 0o777 for name in os.listdir(tmp_path / "r")}
    assert set(modes.values()) == {0o644}, modes


# --- interrupts, closed pipes, warnings, progress --------------------------------------------------

def test_ctrl_c_in_evaluate_exits_130_without_a_traceback(base_run, tmp_path, capsys, monkeypatch):
    import pyro_vae.cli.evaluate_command as evaluate_command

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate_command, "tightness_report", interrupted)
    run = copy_run(base_run, tmp_path)
    before = snapshot(run)
    code, _, err = cli(capsys, "evaluate", run, *EVAL)
    assert code == 130 and err.strip().splitlines()[-1] == "pyro-vae: interrupted; evaluate wrote nothing more"
    assert snapshot(run) == before


def test_plot_into_a_closed_pipe_writes_every_figure_and_exits_quietly(base_run, tmp_path):
    """Before: BrokenPipeError with a traceback (``pyro-vae plot DIR | head``)."""
    run = copy_run(base_run, tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "pyro_vae.cli", "plot", str(run), "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    proc.stdout.close()  # the reader has gone before the first line
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait() == 0 and err == ""
    assert {"training_curves.png", "reconstructions.png", "samples.png", "interpolations.png", "latent_scatter.png",
            "latent_manifold.png"} <= set(os.listdir(run))


def test_warnings_are_one_clean_line_on_the_command_line(tmp_path):
    """Before: SampledKLWarning printed with its source file, line number and code line."""
    result = subprocess.run([sys.executable, "-m", "pyro_vae.cli", "train", *FAST, "--prior", "mog:3", "--elbo",
                             "meanfield", "--epochs", "1", "--out", str(tmp_path / "r")], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyro-vae: warning: SampledKLWarning: TraceMeanField_ELBO has no "
                                                   "analytic KL for site 'z'"), result.stderr
    assert ".py:" not in result.stderr


def test_the_python_api_keeps_real_warnings(tmp_path, capsys):
    import warnings

    before = warnings.showwarning
    assert cli(capsys, "train", *FAST, "--epochs", 1, "--out", tmp_path / "r")[0] == 0
    assert warnings.showwarning is before  # the command line's one-line format only while a command runs
    import pyro_vae  # noqa: F401  (and nothing is replaced at import time)
    assert warnings.showwarning is before


def test_evaluate_prints_plain_progress_lines_when_stderr_is_not_a_terminal(base_run, tmp_path, capsys):
    run = copy_run(base_run, tmp_path)
    code, _, err = cli(capsys, "evaluate", run, *EVAL, "--batch-size", 10)
    assert code == 0
    lines = err.splitlines()
    assert lines[0].startswith("evaluate: 10/20 images (50%)") and lines[-1].startswith("evaluate: 20/20 images (100%)")


def test_progress_lines_are_spaced_in_time():
    import io

    from pyro_vae.cli.options import Progress

    stream = io.StringIO()
    progress = Progress(100, "images", "evaluate", every=3600, stream=stream)
    for _ in range(10):
        progress.update(10)
    assert [line.split(" (")[0] for line in stream.getvalue().splitlines()] == ["evaluate: 10/100 images",
                                                                               "evaluate: 100/100 images"]


def test_a_positive_elbo_is_explained_in_one_line(tmp_path, capsys):
    code, out, _ = cli(capsys, "train", *FAST[:-3], "--threads", "1", "--likelihood", "cbernoulli", "--binarize",
                       "none", "--epochs", 5, "--out", tmp_path / "r")
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert code == 0 and summary["test_elbo"] > 0
    assert out.count("note: a positive ELBO is possible here") == 1


def test_help_lists_every_activation_the_networks_accept():
    """Before: --help listed relu | tanh | softplus | elu while MLP also takes sigmoid and identity."""
    from pyro_vae.cli.parser import make_parser
    from pyro_vae.models.nets import ACTIVATIONS

    train = make_parser()._subparsers._group_actions[0].choices["train"]
    action = next(a for a in train._actions if a.dest == "activation")
    assert action.help.split(" (default")[0].split(" | ") == list(ACTIVATIONS)

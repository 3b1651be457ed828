"""Data-parallel training and evaluation under torchrun (2 CPU processes, gloo), against one process."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# --step captured: the graph without inductor (seconds less per process); tests/inference/test_compiled.py
# and the command-line test of warnings compile with inductor
SMALL = ["--dataset", "digits", "--hidden", "32", "--latent-dim", "4", "--quiet", "--threads", "1",
         "--step", "captured"]


def run(*args, procs=None, script=None, env=None):
    """``pyro-vae ARGS`` in one process, or under torchrun with ``procs`` processes."""
    args = [str(a) for a in args]
    if procs is None:
        cmd = [sys.executable, "-m", "pyro_vae", *args]
    else:
        target = [script] if script else ["-m", "pyro_vae"]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
               *target, *args]
    full_env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                    OMP_NUM_THREADS="1", **(env or {}))
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=full_env, timeout=900)
    # no retry: a worker that aborts at teardown fails the test (its process group must be gone by then)
    for sign in ("terminate called", "TeardownWarning", "Signal 6", "SIGABRT"):
        assert sign not in result.stderr, result.stderr
    return result


def params(run_dir):
    return torch.load(os.path.join(run_dir, "checkpoint.pt"), weights_only=True)


def test_two_ranks_with_batch_b_equal_one_process_with_batch_2b(tmp_path):
    """The autoencoder's objective has no random draws, so the two runs must agree to float rounding:
    the same global batches (1437 rows: 14 of 100 and a ragged one of 37, split 19 + 18), gradients
    averaged with each rank's share of the rows. Measured: max |difference| 3e-8 after 2 epochs."""
    flags = ["train", "--model", "ae", *SMALL, "--binarize", "static", "--epochs", 2]
    one = run(*flags, "--batch-size", 100, "--out", tmp_path / "one")
    two = run(*flags, "--batch-size", 50, "--out", tmp_path / "two", procs=2)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    a, b = params(tmp_path / "one"), params(tmp_path / "two")
    assert b["world_size"] == 2 and len(b["rng_ranks"]) == 2
    for name in a["model"]:
        assert torch.allclose(a["model"][name], b["model"][name], atol=1e-6, rtol=0), name
    assert a["history"][-1]["test_elbo"] == pytest.approx(b["history"][-1]["test_elbo"], abs=1e-5)


def test_two_rank_resume_is_exact_and_other_world_sizes_are_refused(tmp_path):
    flags = ["train", *SMALL, "--batch-size", 50]
    straight = run(*flags, "--epochs", 3, "--out", tmp_path / "straight", procs=2)
    first = run(*flags, "--epochs", 2, "--out", tmp_path / "resumed", procs=2)
    resumed = run("train", "--resume", tmp_path / "resumed", "--epochs", 3, "--threads", 1, procs=2)
    assert straight.returncode == first.returncode == resumed.returncode == 0, resumed.stderr
    a, b = params(tmp_path / "straight"), params(tmp_path / "resumed")
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    assert [r["test_elbo"] for r in a["history"]] == [r["test_elbo"] for r in b["history"]]
    alone = run("train", "--resume", tmp_path / "resumed", "--epochs", 4)
    assert alone.returncode == 2 and "Traceback" not in alone.stderr
    assert "written by a run of 2 process(es)" in alone.stderr.strip().splitlines()[-1]


def test_a_failing_rank_ends_the_job_with_its_message_and_keeps_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    result = run("train", *SMALL, "--batch-size", 50, "--epochs", 3, "--out", out, procs=2,
                 script=os.path.join(ROOT, "tests", "support", "failing_rank.py"))
    assert result.returncode != 0
    assert "pyro-vae[rank 1]: error: injected failure at the second epoch" in result.stderr
    assert "pyro-vae: error: another process of this torchrun job stopped" in result.stderr
    workers = [line for line in result.stderr.splitlines() if line.startswith("[rank")]
    assert not any("Traceback" in line for line in workers), workers  # torchrun's own summary aside
    state = params(out)
    assert state["epoch"] == 1  # the first epoch's checkpoint survived


def test_distributed_evaluate_writes_the_single_process_eval_json(tmp_path):
    out = tmp_path / "run"
    assert run("train", *SMALL, "--epochs", 2, "--out", out).returncode == 0
    flags = ["evaluate", out, "--num-samples", 100, "--batch-size", 40, "--max-images", 200, "--quiet",
             "--threads", 1]  # --threads sets numpy's and scikit-learn's thread pools too: the code report's probes
    assert run(*flags).returncode == 0
    single = json.loads((out / "eval.json").read_text())
    result = run(*flags, procs=2)
    assert result.returncode == 0, result.stderr
    double = json.loads((out / "eval.json").read_text())
    assert single["processes"] == 1 and double["processes"] == 2
    assert "probe_accuracy_pixels" in single  # the code report is compared too
    assert set(single) == set(double)
    for key in single:
        if key not in ("seconds", "seconds_bounds", "processes"):
            assert single[key] == double[key], key


def test_a_bad_argument_under_torchrun_is_its_one_line_and_torchruns_root_cause(tmp_path):
    """torchrun's own exit status (1) and failure summary cannot be changed from a worker; the one-line
    error comes first and is the summary's root cause instead of a pointer to torch's documentation."""
    result = run("train", *SMALL, "--lr", -1, "--out", tmp_path / "r", procs=2)
    assert result.returncode == 1 and not (tmp_path / "r").exists()
    ours = [line for line in result.stderr.splitlines() if line.startswith("pyro-vae")]
    assert ours and set(ours) <= {"pyro-vae: error: --lr must be a positive number, got -1.0",
                                  "pyro-vae[rank 1]: error: --lr must be a positive number, got -1.0"}, ours
    assert re.search(r"traceback : pyro-vae(\[rank 1\])?: error: --lr must be a positive number, got -1\.0",
                     result.stderr), result.stderr

"""Soak test of ``torchrun``: consecutive 2-process ``train`` + ``evaluate`` jobs on a loaded machine.

Each job trains a small VAE on the 8x8 digits for 2 epochs with 2 processes (gloo) and evaluates it
with 2 processes, while ``--load`` busy Python loops keep the cores occupied. A job counts as an
abort when any worker died of a signal (SIGABRT: ``terminate called without an active exception``,
or any other) or either command failed. With ``--core-dumps`` each job runs in its own folder with
``RLIMIT_CORE`` unlimited, so a native abort leaves a core file there for gdb
(``gdb -batch -ex 'thread apply all bt' PYTHON CORE``).

    python scripts/torchrun_soak.py --jobs 50 --load 2 --out /tmp/soak

Prints one line per job and a summary; exits 1 if any job aborted.
"""

import argparse
import multiprocessing
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--dataset", "digits", "--hidden", "32", "--latent-dim", "4", "--quiet", "--threads", "1"]
ABORT_MARKS = ("terminate called", "Signal 6", "SIGABRT", "exitcode  : -", "core dumped")


def busy():
    """A core kept busy until killed."""
    x = 0
    while True:
        x += 1


def torchrun(args, cwd, core_dumps, timeout):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "pyro_vae", *map(str, args)]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")

    def limits():
        if core_dumps:
            resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    t0 = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                            preexec_fn=limits)
    return result, time.perf_counter() - t0


def aborted(result):
    return result.returncode != 0 or any(mark in result.stderr for mark in ABORT_MARKS)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50, help="consecutive train + evaluate jobs (default 50)")
    parser.add_argument("--load", type=int, default=os.cpu_count() or 2,
                        help="busy loops running beside the jobs (default: one per core)")
    parser.add_argument("--out", default="runs/torchrun_soak", help="folder of the jobs' runs (emptied first)")
    parser.add_argument("--core-dumps", action="store_true", help="let an aborting worker dump core in its job folder")
    parser.add_argument("--keep-going", action="store_true", help="run every job even after an abort")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per command (default 600)")
    args = parser.parse_args(argv)
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))  # kill the loops below on the way out
    loaders = [multiprocessing.Process(target=busy, daemon=True) for _ in range(args.load)]
    for p in loaders:
        p.start()
    print(f"{args.jobs} jobs of 2-process train + evaluate, {args.load} busy loops beside them, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    aborts, t_start = [], time.perf_counter()
    try:
        for job in range(1, args.jobs + 1):
            folder = os.path.abspath(os.path.join(args.out, f"job-{job:03d}"))
            os.makedirs(folder)
            train, t_train = torchrun(["train", *SMALL, "--batch-size", 50, "--epochs", 2, "--out", "run"], folder,
                                      args.core_dumps, args.timeout)
            evaluate, t_eval = (torchrun(["evaluate", "run", "--num-samples", 100, "--max-images", 200,
                                          "--no-representation", "--quiet", "--threads", 1], folder, args.core_dumps,
                                         args.timeout) if train.returncode == 0 else (None, 0.0))
            bad = [(name, r) for name, r in (("train", train), ("evaluate", evaluate)) if r is not None and aborted(r)]
            status = "ok" if not bad else "ABORT in " + ", ".join(name for name, _ in bad)
            print(f"job {job:3d}: {status}  (train {t_train:5.1f} s, evaluate {t_eval:5.1f} s, "
                  f"load {os.getloadavg()[0]:.1f})", flush=True)
            for name, r in bad:
                aborts.append(job)
                with open(os.path.join(folder, f"{name}.stderr"), "w") as f:
                    f.write(r.stderr)
                lines = [line for line in r.stderr.splitlines() if line.strip()]
                print("    " + "\n    ".join(lines[-6:]), flush=True)
            if bad and not args.keep_going:
                break
            if not bad:
                shutil.rmtree(folder)
    finally:
        for p in loaders:
            p.kill()
    done = job
    print(f"{done} jobs in {time.perf_counter() - t_start:.0f} s: {len(set(aborts))} with an abort"
          + (f" (jobs {sorted(set(aborts))})" if aborts else ""), flush=True)
    return 1 if aborts else 0


if __name__ == "__main__":
    sys.exit(main())

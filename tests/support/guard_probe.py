"""Run ``pyro-vae`` commands in this process under an address-space limit and report how each ended.

    python tests/support/guard_probe.py HEADROOM_BYTES < cases.json

``cases.json`` is ``{"warm_up": [argv, ...], "cases": [argv, ...]}``. The warm-up commands run
first, unlimited, so that the libraries and caches the commands load on first use (arviz,
scikit-learn, matplotlib and its fonts: about 300 MB of address space) are in place; the resource
guard's reserve for them (512 MB) is lowered to :data:`RESERVE`, then ``RLIMIT_AS`` is set to the
process's size plus ``HEADROOM_BYTES``, so the guard's estimates alone stand between a command
and the limit. The work ceiling is lowered to :data:`CEILING` so that whatever the guard lets
through runs in a moment. Prints one JSON line per
case: ``{"argv", "code", "stderr", "exception"}``; an allocation that hits the limit shows as an
exception (MemoryError, or torch's RuntimeError), or kills the process.
"""

import contextlib
import io
import json
import resource
import sys
import traceback

import arviz  # noqa: F401
import matplotlib
import sklearn.linear_model  # noqa: F401
import torch

from pyro_vae.cli import main
from pyro_vae.experiment import guard

matplotlib.use("Agg")
RESERVE = 48 * 2**20  # allocator slack once the libraries are loaded
CEILING = 3e9  # multiply-adds: a fraction of a second of the tiny probe nets


def vm_size():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))


def run(argv):
    err = io.StringIO()
    code, exception = None, None
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
        except BaseException as e:  # noqa: B036 (MemoryError, torch's allocation RuntimeError: the limit was hit)
            exception = "".join(traceback.format_exception_only(e)).strip()[:300]
    return {"argv": argv, "code": code, "stderr": err.getvalue(), "exception": exception}


def warm_up():
    """Load what the commands load on first use (matplotlib's fonts and PNG writer, arviz's PSIS)."""
    import io

    from matplotlib.figure import Figure

    from pyro_vae.diagnostics.bounds import psis

    fig = Figure(figsize=(1, 1))
    fig.add_subplot().imshow([[0.0, 1.0]])
    fig.text(0.5, 0.5, "x")
    fig.savefig(io.BytesIO(), format="png")
    psis(torch.randn(100, 2))


if __name__ == "__main__":
    torch.set_num_threads(1)
    warm_up()
    guard.RESERVE, guard.WORK_CEILING = RESERVE, CEILING
    given = json.load(sys.stdin)
    for argv in given["warm_up"]:
        warmed = run(argv)
        assert warmed["code"] == 0, warmed
    cases = given["cases"]
    limit = vm_size() + int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for argv in cases:
        print(json.dumps(run(argv)), flush=True)

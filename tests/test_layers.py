"""The folders are layers and imports only go down: import-linter's contract in pyproject.toml."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def lint_imports():
    exe = shutil.which("lint-imports") or os.path.join(os.path.dirname(sys.executable), "lint-imports")
    if not os.path.exists(exe):
        pytest.fail("lint-imports is missing: pip install -e '.[dev]' installs import-linter")
    return subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_layer_contract_is_kept():
    result = lint_imports()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def test_every_module_belongs_to_a_layer():
    """A new top-level module would escape the contract: list the ones allowed outside the layers."""
    import pyro_vae

    top = {name for name in os.listdir(os.path.dirname(pyro_vae.__file__)) if not name.startswith("__")}
    layered = {"cli", "experiment", "plots", "diagnostics", "inference", "models", "families", "specs.py", "data.py",
               "labels.py", "errors.py"}
    shims = {"bounds.py"}  # pyro_vae.bounds: a re-export of diagnostics.bounds, kept importable by its old name
    assert top - {"__pycache__"} == layered | shims


def test_the_library_never_imports_the_command_line():
    """``import pyro_vae`` gives the library; the ``cli`` layer loads only for the ``pyro-vae`` command."""
    code = "import sys, pyro_vae; print(sorted(m for m in sys.modules if m.startswith('pyro_vae.cli')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr

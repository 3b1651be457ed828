"""No tracked file outside the tests names an absolute path of the machine it was made on: shipped
configs, docs and scripts must work from any clone (a user's data is named with a data directory or
a path relative to the run)."""

import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Home and work roots of the machines this project is developed on, and this clone's own location.
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|root|home|Users|mnt)/[\w.-]+")
TEXT = (".py", ".md", ".json", ".toml", ".cfg", ".txt", ".csv", ".sh", ".ipynb", ".rst", ".yaml", ".yml", "")


def tracked_files():
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [f for f in out.splitlines() if not f.startswith("tests/") and os.path.splitext(f)[1] in TEXT]


def machine_paths(text):
    return MACHINE_PATH.findall(text) + ([ROOT] if ROOT in text else [])


def test_the_check_finds_a_machine_path():
    assert machine_paths('{"dataset": "npz:/work/shared/data/mnist.npz"}')
    assert machine_paths(f"trained in {ROOT}/runs/x")
    assert not machine_paths('{"dataset": "mnist", "data_dir": null}  see /dev/null, ~/data, runs/x, /tmp/x')


def test_no_tracked_file_names_a_path_of_this_machine():
    offenders = {}
    for name in tracked_files():
        try:
            with open(os.path.join(ROOT, name), encoding="utf-8") as f:
                found = machine_paths(f.read())
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        if found:
            offenders[name] = sorted(set(found))[:3]
    assert not offenders, f"absolute paths of a machine in tracked files: {offenders}"

"""The notebooks are committed without outputs and honour the smoke switch; `make test` executes them
(``PYRO_VAE_SMOKE=1 pytest --nbmake notebooks``)."""

import json
import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_the_three_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["00_mixture_em.ipynb", "01_autoencoders.ipynb", "02_vae_svi.ipynb",
                                           "03_bound_tightness.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped_and_smoke_aware(path):
    book = json.loads(path.read_text())
    code = [c for c in book["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code), "strip the outputs"
    source = "".join("".join(c["source"]) for c in code)
    assert 'os.environ.get("PYRO_VAE_SMOKE") == "1"' in source
    assert 'DATASET = "digits" if SMOKE else "mnist5k"' in source and "download=True" not in source  # embedded
    assert book["metadata"]["kernelspec"]["name"] == "python3"

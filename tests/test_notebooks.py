"""The notebooks are committed with the outputs of a full-setting run (the docs render them, and a reader of
the repository sees the figures) and honour the smoke switch; `make test` executes them in smoke mode
(``PYRO_VAE_SMOKE=1 pytest --nbmake notebooks``), which does not write back."""

import json
import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))

# A line that only the full setting prints (the smoke setting uses scikit-learn's 8x8 digits and
# smaller budgets), per notebook.
FULL_SETTING = {
    "00_mixture_em.ipynb": "mnist5k: 4000 train / 1000 test binary images of 784 pixels; K = 50",
    "01_autoencoders.ipynb": "mnist5k torch.Size([4000, 784]) torch.Size([1000, 784])",
    "02_vae_svi.ipynb": "x dist   6   | 784",
    "03_bound_tightness.ipynb": "20 images: L_5000",
}


def test_the_four_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == list(FULL_SETTING)


def text_of(output):
    if output["output_type"] == "stream":
        return "".join(output["text"])
    return "".join(output.get("data", {}).get("text/plain", ""))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_holds_a_full_run_and_is_smoke_aware(path):
    book = json.loads(path.read_text())
    code = [c for c in book["cells"] if c["cell_type"] == "code"]
    # executed top to bottom in one kernel, every cell
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1)), "run every cell in order"
    outputs = [o for c in code for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"], "a cell raised"
    assert not [o for o in outputs if o["output_type"] == "stream" and o["name"] == "stderr"
                and "Traceback" in text_of(o)], "a traceback on stderr"
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure in the outputs"
    assert FULL_SETTING[path.name] in "".join(map(text_of, outputs)), "outputs of the smoke setting: rerun in full"
    assert path.stat().st_size < 1_000_000, "outputs too large: lower the figures' dpi"

    source = "".join("".join(c["source"]) for c in code)
    assert 'os.environ.get("PYRO_VAE_SMOKE") == "1"' in source
    assert 'DATASET = "digits" if SMOKE else "mnist5k"' in source and "download=True" not in source  # embedded
    assert book["metadata"]["kernelspec"]["name"] == "python3"

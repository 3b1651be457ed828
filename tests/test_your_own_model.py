"""docs/your-own-model.md runs: its Python blocks, in order, as one script, at small sizes.

The page's first block sets ``EPOCHS, S, N_TEST, T`` (training passes, importance samples, test images,
AIS steps); the test rewrites that one line and checks what the page says the code produces.
"""

import pathlib
import re

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "your-own-model.md"
SIZES = re.compile(r"^EPOCHS, S, N_TEST, T = .*$", re.M)


def page_code():
    blocks = re.findall(r"^```python\n(.*?)^```", PAGE.read_text(), re.S | re.M)
    return "\n".join(blocks)


def test_the_page_sets_its_sizes_in_one_line():
    assert len(SIZES.findall(page_code())) == 1


@pytest.mark.timeout(600)
def test_the_page_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = SIZES.sub("EPOCHS, S, N_TEST, T = 1, 20, 40, 5", page_code())
    namespace = {"__name__": "your_own_model"}
    exec(compile(code, str(PAGE), "exec"), namespace)  # noqa: S102 (the page's own code)
    out = capsys.readouterr().out

    report = namespace["report"]
    assert report["num_images"] == 40 and report["num_samples"] == 20
    assert report["verdict"]["level"] in ("reliable", "caution", "lower-bound-only")
    assert list(report["bound_curve"]) == ["1", "5", "20"]
    assert report["elbo"] <= report["log_likelihood"] + 1e-6 and report["gap"] >= 0  # L_S >= ELBO
    assert "verdict:" in out and "L_20" in out  # the printed table
    assert "epoch 1: -ELBO" in out and "AIS - L_20" in out

    result = namespace["result"]
    assert result.log_likelihood.shape == (20,) and torch.isfinite(result.log_likelihood).all()
    for name in ("bound_tightness.png", "khat.png", "samples.png"):
        assert (tmp_path / name).stat().st_size > 1000

# Two commands do everything from a fresh clone: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test docs install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Train the default VAE (784-400-20, Bernoulli, analytic KL) on the embedded 5,000 MNIST digits.
demo: $(STAMP)
	$(BIN)/pyro-vae train

# The documentation site (docs/, Sphinx + MyST) with warnings as errors: a malformed docstring field, a
# broken cross-reference or a page outside the toctree fails it. -E: a fresh environment each time, since an
# incremental build would not repeat the warnings of unchanged pages. Open docs/_build/html/index.html.
docs: $(STAMP)
	$(BIN)/sphinx-build -E -W --keep-going -q -b html docs docs/_build/html

# The docs build, the test suite (ruff included: tests/test_lint.py), then the notebooks executed by nbmake
# in smoke mode (digits, a few epochs each) on the venv's own kernel.
test: $(STAMP) docs
	$(BIN)/python -m pytest tests
	PYRO_VAE_SMOKE=1 $(BIN)/python -m pytest --nbmake --nbmake-kernel=python3 --nbmake-timeout=300 notebooks

clean:
	rm -rf $(VENV) runs docs/_build docs/tutorials

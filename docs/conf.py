"""Sphinx configuration: MyST Markdown pages, the notebooks rendered with their committed outputs, and an API
reference autodoc'd from the reST docstrings. ``make docs`` builds it with ``-W --keep-going``: every
warning (a malformed docstring field, a broken cross-reference, a page outside the toctree) fails the build.
"""

import filecmp
import pathlib
import shutil

import pyro_vae

project = "pyro_vae"
author = "the pyro_vae authors"
copyright = "2026, the pyro_vae authors"
release = pyro_vae.__version__ if hasattr(pyro_vae, "__version__") else ""
version = release

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.mathjax"]

# The notebooks live in notebooks/ (where `make test` executes them in smoke mode). They are rendered
# with the outputs committed in them, never executed here: a full-setting run takes minutes each.
# Sphinx only reads sources under docs/, so each build copies them into docs/tutorials/ (ignored by
# git: one copy of each notebook in the repository), rewriting a copy only when its notebook changed
# so that unchanged tutorials are not rebuilt.
DOCS = pathlib.Path(__file__).parent
TUTORIALS = DOCS / "tutorials"
TUTORIALS.mkdir(exist_ok=True)
for notebook in sorted((DOCS.parent / "notebooks").glob("*.ipynb")):
    copy = TUTORIALS / notebook.name
    if not copy.exists() or not filecmp.cmp(notebook, copy, shallow=False):
        shutil.copyfile(notebook, copy)
for stale in TUTORIALS.glob("*.ipynb"):
    if not (DOCS.parent / "notebooks" / stale.name).exists():
        stale.unlink()

nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3  # links to "page.md#a-heading" resolve (and a wrong anchor is a warning)

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]

# Every cross-reference must resolve, so a renamed function breaks the build instead of a link.
nitpicky = True
# No network at build time, hence no intersphinx inventories: references into these packages (type
# hints such as torch.Tensor, pyro's distributions) cannot be resolved and are not checked. References
# inside pyro_vae are.
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|pyro|numpy|np|matplotlib|arviz|sklearn|torchvision)(\..*)?"),
    (r"py:.*", r"(Tensor|nn\.Module|Figure|Axes|Distribution|TorchDistribution|Trace)"),
]

autodoc_default_options = {"members": False, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"

html_theme = "alabaster"
html_title = "pyro_vae"
html_theme_options = {"description": "Autoencoders and VAEs as Pyro programs, with honest bound diagnostics",
                      "page_width": "1200px", "sidebar_width": "260px"}

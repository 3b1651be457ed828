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


# --- Checks and cross-reference resolution for the API reference -------------------------------------------

import importlib  # noqa: E402
import inspect  # noqa: E402
import pkgutil  # noqa: E402
import re  # noqa: E402

from docutils import nodes  # noqa: E402
from sphinx.util import logging  # noqa: E402

LOG = logging.getLogger("pyro_vae.docs")

# A reST field list holds one field per line: ":param x: ... :param y: ..." on one line renders as a single
# field whose text contains the second, so it is reported (and fails the -W build).
FIELD = r":(?:param|parameter|arg|type|returns?|rtype|raises?|ivar|var|cvar|yields?)\b[^:`\n]*:"
SECOND_FIELD = re.compile(r"\S.*?\s(" + FIELD + r")(?:\s|$)")
PARAM = re.compile(r"^\s*:param\s+(?:[\w.\[\], |]+\s+)?(\*{0,2}\w+):")


def check_docstring(app, what, name, obj, options, lines):
    """Report a second field on one docstring line, and a ``:param`` that names no parameter."""
    for number, line in enumerate(lines, 1):
        if not line.lstrip().startswith(".. ") and SECOND_FIELD.match(line.strip()):
            LOG.warning("docstring of %s, line %d: two fields on one line (one field per line): %r",
                        name, number, line.strip(), type="pyro_vae", subtype="field")
    target = obj.__init__ if what == "class" else obj
    if what not in ("function", "method", "class") or not callable(target):
        return
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    for line in lines:
        match = PARAM.match(line)
        if match and match.group(1).lstrip("*") not in parameters:
            LOG.warning("docstring of %s: :param %s: names no parameter of %s%s", name, match.group(1),
                        name, inspect.signature(target), type="pyro_vae", subtype="param")


def _pyro_vae_names():
    """Every attribute name of every pyro_vae module and of every class defined in one, with its object."""
    index = {}
    for info in pkgutil.walk_packages(pyro_vae.__path__, "pyro_vae."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        index.setdefault(info.name.rsplit(".", 1)[1], []).append(module)
        for attr, value in vars(module).items():
            index.setdefault(attr, []).append(value)
            if inspect.isclass(value) and value.__module__.startswith("pyro_vae"):
                for member in vars(value):
                    index.setdefault(member, []).append(getattr(value, member, None))
    return index


def _lookup(path):
    """The object a dotted path names, importing modules on the way; None when it names nothing."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for part in parts[cut:]:
                obj = getattr(obj, part)
        except AttributeError:
            return None
        return obj
    return None


def resolve_reference(app, env, node, contnode):
    """Resolve a Python reference that names an object by the module where it is defined.

    The API reference documents each public object once, under the name users import
    (``pyro_vae.VAE``); docstrings may name it where it is defined (``pyro_vae.models.vae.VAE``). Such a
    reference is linked to the documented name. A reference to an object that exists but is not in the
    API reference (an internal helper) is rendered as code without a link. A reference that names
    nothing (a typo, a renamed function) stays unresolved: nitpicky mode reports it and -W fails the build.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    candidates = [target]
    if node.get("py:module"):
        candidates.append(node["py:module"] + "." + target)
        if node.get("py:class"):
            candidates.append(node["py:module"] + "." + node["py:class"] + "." + target)
    found = [obj for obj in map(_lookup, candidates) if obj is not None]
    if not found and "." not in target:  # a short name: any pyro_vae module or class that defines it
        found = [obj for obj in _INDEX.get(target, []) if obj is not None]
    if not found:
        return None
    domain = env.get_domain("py")
    if _DOCUMENTED.get("count") != len(domain.objects):  # id of each documented object -> its name
        _DOCUMENTED.clear()
        _DOCUMENTED["count"] = len(domain.objects)
        for name in sorted(domain.objects, key=len):
            _DOCUMENTED.setdefault(id(_lookup(name)), name)
    for obj in found:
        name = _DOCUMENTED.get(id(obj))
        if isinstance(name, str):
            return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], name, node, contnode)
    return contnode if isinstance(contnode, nodes.literal) else nodes.literal("", contnode.astext())


_INDEX = {}
_DOCUMENTED = {}


def setup(app):
    app.connect("autodoc-process-docstring", check_docstring)
    app.connect("builder-inited", lambda app: _INDEX.update(_pyro_vae_names()))
    app.connect("missing-reference", resolve_reference)

"""The documentation: a short README, links that resolve, no work history on user-facing pages, every public
name in the API reference. (`make docs` builds the site itself with warnings as errors.)"""

import pathlib
import re

import pytest

import pyro_vae as pv

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# The user-facing Markdown: the README and the site's sources (not the build, not the copied notebooks).
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md"] + sorted(
    p for p in DOCS.rglob("*.md") if not {"_build", "tutorials"} & set(p.relative_to(DOCS).parts))

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def prose(path):
    """The page without its fenced code blocks and inline code, where link-like text is not a link."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", path.read_text()))


def relative_links(path):
    for target in LINK.findall(prose(path)):
        if not re.match(r"[a-z][a-z0-9+.-]*:", target) and not target.startswith("#"):
            yield target


def test_the_pages_exist():
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"docs/index.md", "docs/getting-started.md", "docs/your-own-model.md", "docs/guide/index.md",
            "docs/tutorials.md", "docs/benchmarks.md", "docs/api/index.md"} <= names
    assert not (ROOT / "BENCHMARKS.md").exists()


def test_readme_is_at_most_250_lines():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move sections into docs/guide/"


def test_the_link_check_finds_links():
    targets = list(relative_links(ROOT / "README.md"))
    assert "docs/getting-started.md" in targets and "docs/images/samples.png" in targets


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_at_files(path):
    broken = [t for t in relative_links(path) if not (path.parent / t.split("#")[0]).exists()]
    assert not broken, f"{path.relative_to(ROOT)} links to missing files: {broken}"


# How work was organised (issue numbers, sessions of work) belongs to the repository's history, not to
# the pages a user reads.
HISTORY = re.compile(r"\bissues?\s*#?\s*\d+|(?<![\w#])#\d{1,4}\b|\bsessions?\b", re.I)


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_user_facing_pages_do_not_mention_work_history(path):
    found = [(n, line.strip()) for n, line in enumerate(path.read_text().splitlines(), 1) if HISTORY.search(line)]
    assert not found, f"{path.relative_to(ROOT)}: {found}"


def test_the_history_check_finds_history():
    assert HISTORY.search("After issue 15, the step") and HISTORY.search("this session's time")
    assert HISTORY.search("fixed in #12") and not HISTORY.search("784-400-20, S = 5000")


def documented_names(package="pyro_vae"):
    """Names documented as ``PACKAGE.NAME`` by an autodoc directive in docs/api/*.md."""
    text = "\n".join(p.read_text() for p in (DOCS / "api").glob("*.md"))
    prefix = re.escape(package + ".")
    return set(re.findall(r"^\s*(?:\.\. auto\w+::|```\{auto\w+\})\s+" + prefix + r"(\w+)\s*$", text, re.M))


def test_every_public_name_is_in_the_api_reference():
    missing = sorted(set(pv.__all__) - documented_names() - {m for m in pv.__all__ if m.startswith("__")})
    assert not missing, f"add these names of pv.__all__ to a page of docs/api/: {missing}"


def test_the_api_reference_documents_only_public_names():
    extra = sorted(documented_names() - set(pv.__all__))
    assert not extra, f"docs/api/ documents names that are not in pv.__all__: {extra}"


def test_every_plot_function_is_in_the_api_reference():
    import pyro_vae.plots

    missing = sorted(set(pyro_vae.plots.__all__) - documented_names("pyro_vae.plots"))
    assert not missing, f"add these names of pyro_vae.plots.__all__ to docs/api/plots.md: {missing}"


# A reST field list holds one field per line; a second ":param" on a line is rendered as text of the first.
SECOND_FIELD = re.compile(r"\S.*\s:(param|type|returns?|rtype|raises?)\b[^:`\n]*:(\s|$)")


def docstrings():
    import importlib
    import inspect
    import pkgutil

    for info in pkgutil.walk_packages(pv.__path__, "pyro_vae."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        yield info.name, module.__doc__
        for name, obj in vars(module).items():
            if getattr(obj, "__module__", None) != info.name:
                continue
            yield f"{info.name}.{name}", getattr(obj, "__doc__", None)
            if inspect.isclass(obj):
                for member, value in vars(obj).items():
                    yield f"{info.name}.{name}.{member}", getattr(value, "__doc__", None)


def test_docstrings_hold_one_field_per_line():
    bad = [(where, line.strip()) for where, doc in docstrings() if isinstance(doc, str)
           for line in doc.splitlines() if SECOND_FIELD.search(line.strip())]
    assert not bad, bad


def test_the_field_check_finds_two_fields():
    assert SECOND_FIELD.search(":param x: ``(B, D)`` minibatch. :param num_data: full data-set size N.")
    assert SECOND_FIELD.search("dim -1 (any number of sites); :param guide: ``guide(x)``.")
    assert not SECOND_FIELD.search(":param x: ``(B, D)`` minibatch, see ``:param y:`` below.")

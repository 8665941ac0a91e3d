"""Run the examples in the docstrings of every public treeiso name, and in the
documentation pages that hold ``>>>`` examples, as doctests.

Each docstring is one test, named after the object. Examples that use PyTorch
are skipped when it is not installed. Doctest flags: ELLIPSIS and
NORMALIZE_WHITESPACE; NumPy prints in its default (>= 2.0) style.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import inspect
from pathlib import Path

import numpy as np
import pytest

import treeiso

ROOT = Path(__file__).resolve().parents[1]
DOC_PAGES = ["docs/index.rst", "docs/getting_started.rst", "docs/distill_guide.rst"]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
HAS_TORCH = importlib.util.find_spec("torch") is not None


def _module(name):
    """``treeiso`` or, for ``distill.X``, ``treeiso.distill`` (which needs torch)."""
    if name.startswith("distill."):
        return importlib.import_module("treeiso.distill"), name.split(".", 1)[1]
    return treeiso, name


def _public_names():
    """Public functions and classes (not modules, not constants) of ``treeiso`` and, when
    torch is installed, of ``treeiso.distill`` (as ``distill.X``)."""
    names = getattr(treeiso, "__all__", None)
    if names is None:
        names = [n for n in dir(treeiso) if not n.startswith("_")]
    if HAS_TORCH:
        distill = importlib.import_module("treeiso.distill")
        names = list(names) + [f"distill.{n}" for n in distill.__all__]
    keep = []
    for name in names:
        try:
            mod, attr = _module(name)
            obj = getattr(mod, attr)
        except (ImportError, AttributeError):
            continue  # reported by test_public_names_import
        if inspect.isclass(obj) or inspect.isroutine(obj):
            keep.append(name)
    return sorted(keep)


def test_public_names_import():
    """Every name in ``treeiso.__all__`` resolves."""
    broken = []
    for name in getattr(treeiso, "__all__", []):
        try:
            getattr(treeiso, name)
        except (ImportError, AttributeError) as err:
            broken.append(f"{name}: {err}")
    assert not broken, broken


def _collect():
    """One (id, DocTest) per docstring that holds examples."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = {}
    for name in _public_names():
        mod, attr = _module(name)
        obj = getattr(mod, attr)
        # module=False: also collect members defined outside treeiso/__init__
        for test in finder.find(obj, f"treeiso.{name}", module=False,
                                globs={"np": np, "treeiso": treeiso}):
            if test.examples:
                found.setdefault(test.name, test)
    return [found[k] for k in sorted(found)]


def _uses_torch(test):
    return any("torch" in ex.source for ex in test.examples)


def _check(test):
    if _uses_torch(test) and not HAS_TORCH:
        pytest.skip("example uses torch, which is not installed")
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    test.globs = {"np": np, "treeiso": treeiso, **test.globs}
    with np.printoptions(legacy=False):
        runner.run(test, out=report.append)
    if runner.failures:
        pytest.fail("".join(report), pytrace=False)


DOCSTRING_TESTS = _collect()


def test_every_public_name_has_an_example():
    """The contract asks for a runnable example on every public name."""
    with_examples = {t.name for t in DOCSTRING_TESTS}
    missing = [n for n in _public_names() if f"treeiso.{n}" not in with_examples]
    assert not missing, f"public names without a docstring example: {missing}"


@pytest.mark.parametrize("test", DOCSTRING_TESTS, ids=[t.name for t in DOCSTRING_TESTS])
def test_docstring(test):
    _check(test)


def _page_tests():
    parser = doctest.DocTestParser()
    out = []
    for rel in DOC_PAGES:
        path = ROOT / rel
        # a moved or renamed page must fail loudly, not drop its examples
        assert path.exists(), f"documentation page {rel} not found: update DOC_PAGES"
        test = parser.get_doctest(path.read_text(), {}, rel, str(path), 0)
        assert test.examples, f"{rel} holds no >>> examples: update DOC_PAGES"
        out.append(test)
    return out


PAGE_TESTS = _page_tests()


@pytest.mark.parametrize("test", PAGE_TESTS, ids=[t.name for t in PAGE_TESTS])
def test_doc_page(test):
    _check(test)

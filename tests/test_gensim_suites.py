"""gensim's own test suites, run against distlda's classes.

The test modules that gensim installs (``gensim/test/test_ldamodel.py``,
``test_corpora_dictionary.py`` and the MmCorpus classes of ``test_corpora.py``)
are executed here from gensim's installed files, with only the imports of the
classes under test answered by distlda: ``ldamodel``, ``ldamulticore``,
``mmcorpus`` and ``Dictionary``. Everything else (fixtures, data files,
``gensim.utils``, ``gensim.matutils``) stays gensim's. Nothing of gensim is
copied into this repository.

Every collected gensim test must pass, except the deliberate differences of
:data:`DIFFERENCES`, the one list of them (docs/gensim.md explains it). Each is
an expected failure with the exception distlda raises, strictly: a difference
that goes away fails the suite until it is taken off the list.
"""

from __future__ import annotations

import builtins
import importlib
from pathlib import Path
from typing import Any, NamedTuple

import pytest

gensim_test = pytest.importorskip("gensim.test", reason="gensim's test suites need gensim (pip install distlda[test])")

# ~15 s, most of it gensim's own training tests: in the full suite, not in the fast loop
pytestmark = pytest.mark.slow

SWAPS: dict[str, dict[str, str]] = {
    "gensim.models": {"ldamodel": "distlda.models.ldamodel", "ldamulticore": "distlda.models.ldamulticore"},
    "gensim.corpora": {"mmcorpus": "distlda.corpora.mmcorpus", "Dictionary": "distlda.corpora:Dictionary"},
}
"""For ``from <module> import <name>`` in gensim's tests: what answers instead (``module`` or ``module:attr``)."""

SUITES: dict[str, tuple[str, ...] | None] = {
    "test_ldamodel": None,
    "test_ldamulticore": None,  # gensim 4.4 tests LdaMulticore inside test_ldamodel; later releases may not
    "test_corpora_dictionary": None,
    "test_corpora": ("TestMmCorpusWithIndex", "TestMmCorpusNoIndex", "TestMmCorpusNoIndexGzip",
                     "TestMmCorpusNoIndexBzip", "TestMmCorpusCorrupt", "TestMmCorpusOverflow"),
}
"""gensim test modules and which of their TestCase classes run (None: all)."""


class Difference(NamedTuple):
    """A gensim test that distlda fails on purpose."""

    raises: type[BaseException]
    reason: str


_PICKLE = "loads a model that gensim pickled: distlda never unpickles (loading a pickle runs code from the file)"
_LDA = ("TestLdaModel", "TestLdaMulticore")
_HEADER = ("its fixture's Matrix Market header declares more entries than the file holds (28 for 22; 22134988630 for "
           "12): gensim reads what is there, distlda refuses it, as a truncated file would otherwise be read "
           "silently short (the NoIndex classes' test_load also expects RuntimeError from corpus[3] without a .index "
           "file, where distlda builds the index on demand)")
_CORRUPT_HEADER = ("TestMmCorpusNoIndex", "TestMmCorpusNoIndexGzip", "TestMmCorpusNoIndexBzip", "TestMmCorpusOverflow")

DIFFERENCES: dict[tuple[str, str], Difference] = {
    **{(cls, "test_model_compatibility_with_python_versions"): Difference(ValueError, _PICKLE) for cls in _LDA},
    **{(cls, "test_random_state_backward_compatibility"): Difference(ValueError, _PICKLE) for cls in _LDA},
    **{(cls, "test_dtype_backward_compatibility"): Difference(ValueError, _PICKLE) for cls in _LDA},
    **{(cls, "test_load"): Difference(ValueError, _HEADER) for cls in _CORRUPT_HEADER},
}
"""The deliberate differences, by (gensim TestCase class, test method): the exception distlda raises and why."""


class _SwappedModule:
    """A module whose listed attributes are distlda's, and every other one the real module's."""

    def __init__(self, real: Any, swaps: dict[str, Any]) -> None:
        self._real, self._swaps = real, swaps

    def __getattr__(self, name: str) -> Any:
        return self._swaps[name] if name in self._swaps else getattr(self._real, name)


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attr) if attr else loaded


def _swapping_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
    real = builtins.__import__(name, globals, locals, fromlist, level)
    swaps = SWAPS.get(name) if level == 0 and fromlist else None
    if not swaps:
        return real
    return _SwappedModule(real, {n: _resolve(swaps[n]) for n in fromlist if n in swaps})


def _load_suite(module: str) -> dict[str, Any] | None:
    """Execute gensim's installed test module ``module`` with the swapped imports; its namespace."""
    path = Path(gensim_test.__file__).parent / f"{module}.py"
    if not path.exists():
        return None
    namespace: dict[str, Any] = {"__name__": f"gensim_suite.{module}", "__file__": str(path),
                                 "__builtins__": {**vars(builtins), "__import__": _swapping_import}}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    return namespace


def _expected_failure(test: Any, difference: Difference) -> Any:
    def expected(self: Any) -> None:
        test(self)

    expected.__name__, expected.__doc__ = test.__name__, difference.reason
    return pytest.mark.xfail(raises=difference.raises, reason=difference.reason, strict=True)(expected)


def _exported_cases() -> dict[str, type]:
    """Subclasses of the chosen gensim TestCases, the deliberate differences marked, named as in gensim."""
    import unittest

    cases: dict[str, type] = {}
    for module, wanted in SUITES.items():
        namespace = _load_suite(module)
        if namespace is None:
            continue
        for name, obj in namespace.items():
            if not (isinstance(obj, type) and issubclass(obj, unittest.TestCase) and name.startswith("Test")):
                continue
            if (wanted is not None and name not in wanted) or name in cases:
                continue
            marked = {method: _expected_failure(getattr(obj, method), diff)
                      for (cls, method), diff in DIFFERENCES.items() if cls == name}
            cases[name] = type(name, (obj,), {"__module__": __name__, **marked})
    return cases


globals().update(_exported_cases())


def test_every_difference_names_a_collected_test() -> None:
    """A listed difference whose test no longer exists in gensim's suites is a stale entry."""
    for cls, method in DIFFERENCES:
        assert cls in globals() and hasattr(globals()[cls], method), f"{cls}.{method} is not a gensim test here"


def test_docs_list_every_difference() -> None:
    """docs/gensim.md shows users the same list."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "gensim.md").read_text(encoding="utf-8")
    missing = [f"{cls}.{method}" for cls, method in DIFFERENCES if f"{cls}.{method}" not in text]
    assert not missing, f"docs/gensim.md does not list {missing}"

"""The package layout's rules, checked from the source: imports only go down, modules and functions stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "distlda"

LAYERS = {
    "validation": 0, "kernels": 0, "io": 0,
    "corpora": 1,
    "core": 2,
    "evaluation": 3, "datasets": 3,
    "cluster": 4, "dask": 4,
    "models": 5,
    "report": 6,
    "cli": 7, "test": 7,
}
"""The rank of each package: a module may import from its own package and from packages of a lower rank only."""

ENTRY_POINTS = {"__init__", "__main__", "nameserver"}
"""Modules at the top of the package: entry points and the version, above every layer."""

THIN_ENTRY_POINTS = {("models", "lda_worker"), ("models", "lda_dispatcher")}
"""The seed's ``python -m distlda.models.lda_worker|lda_dispatcher``: they only start a cluster role."""

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imported_modules(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every import of a distlda module, also inside functions."""
    package = module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names if name in ("distlda",)]
    return [(line, name) for line, name in found if name == "distlda" or name.startswith("distlda.")]


def _layer_of(parts: tuple[str, ...]) -> str | None:
    """The package of a module (a top-level module with a rank is a layer of its own), or None for the
    top-level entry points."""
    return parts[0] if len(parts) > 1 or parts[0] in LAYERS else None


def _violations() -> list[str]:
    problems = []
    for path in _modules():
        rel = path.relative_to(PACKAGE).with_suffix("").parts
        module = ".".join(("distlda",) + rel)
        own = _layer_of(rel)
        if own is None or rel[-1] == "__main__" or (rel[0], rel[-1]) in THIN_ENTRY_POINTS:
            continue
        if own not in LAYERS:
            problems.append(f"{module}: package {own!r} has no rank in LAYERS")
            continue
        for line, name in _imported_modules(ast.parse(path.read_text()), module):
            target = name.split(".")[1:]
            if not target or target[0] == "__version__":
                continue
            other = target[0]
            if other == own:
                continue
            if other not in LAYERS or LAYERS[other] >= LAYERS[own]:
                problems.append(f"{module}:{line} imports {name} ({other} is not below {own})")
    return problems


def test_imports_only_go_down() -> None:
    assert _violations() == []


def test_checker_sees_an_upward_import(tmp_path: Path) -> None:
    tree = ast.parse("def f():\n    from distlda.models import LdaModel\n")
    assert _imported_modules(tree, "distlda.kernels.estep") == [(2, "distlda.models")]


def test_modules_are_small() -> None:
    long = [f"{p.relative_to(PACKAGE)}: {n} lines" for p in _modules()
            if (n := p.read_text().count("\n")) > MAX_MODULE_LINES]
    assert long == []


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_functions_are_short(path: Path) -> None:
    long = [f"{node.name} (line {node.lineno}): {node.end_lineno - node.lineno + 1} lines"
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []

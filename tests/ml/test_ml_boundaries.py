"""The package's hard rules, checked on its source: no chain imports, no pickle, an __all__."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests._import_graph import circles, collapse, describe, import_graph

ML = Path(__file__).resolve().parents[2] / "ml"
SOURCES = sorted(ML.rglob("*.py"))
FORBIDDEN = ("web3", "eth_", "ledger", "api", "pickle", "joblib", "dill", "cloudpickle")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_sources_found() -> None:
    assert {p.name for p in SOURCES} >= {"hashing.py", "datasets.py", "training.py"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_forbidden_imports(path: Path) -> None:
    for name in _imports(path):
        root = name.split(".")[0]
        assert not any(root == f or (f.endswith("_") and root.startswith(f)) for f in FORBIDDEN), (
            f"{path.name} imports {name}"
        )


@pytest.mark.parametrize("path", [p for p in SOURCES if not p.name.startswith("_")], ids=str)
def test_public_modules_declare_all(path: Path) -> None:
    module = importlib.import_module(f"ml.{path.stem}" if path.stem != "__init__" else "ml")
    assert isinstance(module.__all__, list)
    for name in module.__all__:
        assert hasattr(module, name), f"{path.name}: __all__ names missing {name}"


def test_every_error_derives_from_the_root() -> None:
    from ml import errors

    classes = [getattr(errors, name) for name in errors.__all__]
    for cls in classes:
        assert issubclass(cls, errors.MlError)
        if cls is not errors.MlError:
            assert issubclass(cls, ValueError), cls
    codes = [cls.code for cls in classes]  # stable problem types: one per class
    assert len(set(codes)) == len(codes)


def test_no_import_circles() -> None:
    """Each module builds on the ones below it: no circle, lazy imports included (the shared
    column vocabulary lives in ``ml.columns`` so that ``ml.datasets`` can build on the
    scanners)."""
    found = circles(import_graph("ml"))
    assert found == [], describe(found)


def test_the_circle_check_finds_circles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles(collapse(graph, lambda m: "x" if m in "ab" else m)) == [["c", "x"]]

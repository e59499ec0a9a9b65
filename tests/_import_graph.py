"""The import graph of a package, read from its source: for the no-circles tests of ``ledger``
and ``ml`` (``tests/ledger/test_ledger_boundaries.py``, ``tests/ml/test_ml_boundaries.py``).

Every import statement counts, lazy and ``TYPE_CHECKING`` ones included: an arrow drawn only for
the type checker is still an arrow a reader follows."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: str) -> dict[str, set[str]]:
    """Module → the modules of ``package`` it imports (``from p import m`` counts as ``p.m``
    when ``p.m`` is a module, else as ``p``)."""
    sources = {module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in sources.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in sources else node.module)
        graph[name] = {t for t in targets if t in sources and t != name}
    return graph


def collapse(graph: dict[str, set[str]], node_of: Callable[[str], str]) -> dict[str, set[str]]:
    """The same graph with each module replaced by ``node_of(module)`` (its package, say)."""
    collapsed: dict[str, set[str]] = {}
    for source, targets in graph.items():
        here = node_of(source)
        collapsed.setdefault(here, set()).update(node_of(t) for t in targets)
        collapsed[here].discard(here)
    return collapsed


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def package_of(module: str, depth: int = 2) -> str:
    """``ledger.chain.client`` → ``ledger.chain``; a root module (``ledger.errors``) is its own
    node."""
    return ".".join(module.split(".")[:depth])


def describe(found: Iterable[list[str]]) -> str:
    return "; ".join(" ⇄ ".join(c) for c in found)

"""The ledger package's hard rules, checked on its source, as tests/ml/test_ml_boundaries.py does
for ``ml``: arrows point one way (``ledger`` never imports ``api`` or scikit-learn and its
friends, and of ``ml`` only the chain- and sklearn-free ``ml.hashing``), no pickle-likes, public
modules say what they export, and every exception is a ``LedgerError``.

A rule a module breaks today in a file another engineer owns is listed in ``KNOWN`` with the
reason; those cases are strict xfails, so the list cannot outlive the violation.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.errors import LedgerError
from tests._import_graph import circles, collapse, describe, import_graph, package_of

ROOT = Path(__file__).resolve().parents[2]
LEDGER = ROOT / "ledger"
SOURCES = sorted(LEDGER.rglob("*.py"))
FORBIDDEN = ("api", "sklearn", "skops", "scipy", "pandas")
PICKLE_LIKES = ("pickle", "_pickle", "joblib", "dill", "cloudpickle", "shelve", "marshal")
NEVER_LOADED = (*FORBIDDEN, "joblib", "dill", "cloudpickle")  # the standard library's may be
ALLOWED_FROM_ML = {"ml.hashing"}

# (rule, module) → why it fails today. Remove an entry when the module is fixed.
KNOWN: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_private(path: Path) -> bool:
    """``_name.py`` or anything inside a ``_name`` package; ``__init__`` is its package."""
    parts = path.relative_to(LEDGER).with_suffix("").parts
    return any(p.startswith("_") and p != "__init__" for p in parts)


def _imports(path: Path) -> list[str]:
    """Every module an import statement names, anywhere in the file (lazy imports included);
    ``from ml import hashing`` counts as ``ml.hashing``."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "ml":
                names += [f"ml.{alias.name}" for alias in node.names]
            else:
                names.append(node.module)
    return names


def _case(rule: str, path: Path) -> object:
    """A parameter for ``path``, marked as a strict xfail if ``KNOWN`` lists it for ``rule``."""
    name = _module_name(path)
    reason = KNOWN.get((rule, name))
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(path, id=name, marks=marks)


def _violations(path: Path) -> list[str]:
    def forbidden(name: str) -> bool:
        root = name.split(".")[0]
        if root == "ml":
            return name not in ALLOWED_FROM_ML
        return root in FORBIDDEN or root in PICKLE_LIKES

    return [name for name in _imports(path) if forbidden(name)]


def test_sources_found() -> None:
    names = {_module_name(p) for p in SOURCES}
    assert {
        "ledger.chain.client",
        "ledger.index.sqlite",
        "ledger.index.base",
        "ledger.ancestry",
    } <= names
    assert "ledger.chain.backends" in names and "ledger.index._sync" in names


def test_the_rules_catch_what_they_are_about(tmp_path: Path) -> None:
    """The checks themselves: a file that breaks each rule is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pickle\nfrom api.service import Service\nfrom ml import hashing, training\n"
        "def later():\n    import sklearn.linear_model\n    from ml.datasets import load\n",
        encoding="utf-8",
    )
    assert _violations(bad) == [
        "pickle",
        "api.service",
        "ml.training",
        "sklearn.linear_model",
        "ml.datasets",
    ]
    assert KNOWN.keys() <= {
        (rule, _module_name(p)) for rule in ("imports", "errors", "all") for p in SOURCES
    }, "KNOWN names a module that no longer exists"


@pytest.mark.parametrize("path", [_case("imports", p) for p in SOURCES])
def test_no_forbidden_imports(path: Path) -> None:
    assert _violations(path) == [], f"{_module_name(path)} imports {_violations(path)}"


@pytest.mark.parametrize("path", [_case("all", p) for p in SOURCES if not _is_private(p)])
def test_public_modules_declare_all(path: Path) -> None:
    module = importlib.import_module(_module_name(path))
    assert isinstance(module.__all__, list), f"{module.__name__} has no __all__ list"
    for name in module.__all__:
        assert hasattr(module, name), f"{module.__name__}: __all__ names missing {name}"
    assert len(set(module.__all__)) == len(module.__all__)


@pytest.mark.parametrize("path", [_case("errors", p) for p in SOURCES])
def test_every_exception_derives_from_ledger_error(path: Path) -> None:
    module = importlib.import_module(_module_name(path))
    defined = [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and value.__module__ == module.__name__
        and issubclass(value, BaseException)
    ]
    strays = [cls.__name__ for cls in defined if not issubclass(cls, LedgerError)]
    assert strays == [], f"{module.__name__} defines {strays} outside the LedgerError tree"


def test_importing_all_of_ledger_pulls_in_no_ml_stack_and_no_api() -> None:
    """What the source rules mean at run time, imports of imports included: a fresh interpreter
    that imports every ledger module has loaded no scikit-learn, pandas, scipy, skops or api."""
    modules = [_module_name(p) for p in SOURCES]
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"roots = {NEVER_LOADED!r}\n"
        "import json\n"
        "print(json.dumps([sorted(m for m in sys.modules if m.split('.')[0] in roots),\n"
        "                  sorted(m for m in sys.modules if m.split('.')[0] == 'ml')]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded, from_ml = json.loads(done.stdout.splitlines()[-1])
    assert loaded == []
    # ml.hashing and what it needs: ml.errors is a package of three parts
    assert {m for m in from_ml if not m.startswith("ml.errors.")} <= {
        "ml",
        "ml.errors",
        "ml.hashing",
    }


def test_no_import_circles_between_modules_or_packages() -> None:
    """``ledger``'s sub-packages (formats, storage, chain, writes, reading, index, verification)
    and its root modules build on each other one way: no circle among modules, nor among the
    packages they make up, lazy and ``TYPE_CHECKING`` imports included."""
    graph = import_graph("ledger")
    assert circles(graph) == [], describe(circles(graph))
    packages = collapse(graph, package_of)
    assert circles(packages) == [], describe(circles(packages))


def test_the_reader_imports_no_backend() -> None:
    """``ledger.reading`` is the web3-free reader: a backend hands it a transport
    (``ChainBackend.transport``), it never reaches into ``ledger.chain`` for one."""
    packages = collapse(import_graph("ledger"), package_of)
    assert "ledger.chain" not in packages["ledger.reading"]


# Names that several modules define on purpose, each its own value: why.
SAME_NAME_OWN_VALUE = {
    "T": "a TypeVar, local to its module",
    "SCHEMA": "each SQLite store's own tables",
    "FORMAT_VERSION": "each file format's own version",
    "HEX": "merkle accepts 0X as the npm library does; a receipt field only 0x",
    "HEX32": "hash_hex takes an optional 0x; a receipt's hash field must carry it",
}


def test_each_constant_is_defined_once() -> None:
    """A module-level constant (``REGISTRAR_ROLE``, the event topics, ...) is assigned in one
    module; the others import it."""
    where: dict[str, list[str]] = {}
    for path in SOURCES:
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names = [node.target.id]
            else:
                continue
            for name in names:
                bare = name.lstrip("_")
                if bare.isupper() and bare not in SAME_NAME_OWN_VALUE:
                    where.setdefault(bare, []).append(_module_name(path))
    assert {name: mods for name, mods in where.items() if len(mods) > 1} == {}


def test_one_event_decoder() -> None:
    """The typed client, the web3-free reader and the index's raw reads of the node decode
    events through ``ledger.formats.events.decode_event``, and nothing else in ``ledger``
    decodes a log."""
    users = {
        _module_name(p)
        for p in SOURCES
        if "decode_event(" in p.read_text(encoding="utf-8")
        or "process_log(" in p.read_text(encoding="utf-8")
    }
    assert users == {
        "ledger.formats.events",
        "ledger.chain.client",
        "ledger.reading.chain_reader",
        "ledger.index._raw",
    }


@pytest.mark.parametrize("doc", ["README.md", "docs/architecture.md"])
def test_the_docs_name_what_ledger_may_use_from_ml(doc: str) -> None:
    """The prose says what ``ALLOWED_FROM_ML`` says, no more (it once named ``ml.errors``)."""
    text = " ".join((ROOT / doc).read_text(encoding="utf-8").split())
    found = re.search(r"`ledger` uses only (.*?) \(", text)
    assert found is not None, f"{doc} no longer says what ledger uses from ml"
    assert set(re.findall(r"`(ml\.\w+)`", found.group(1))) == ALLOWED_FROM_ML

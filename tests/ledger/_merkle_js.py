"""Run the reference implementation, npm ``@openzeppelin/merkle-tree`` (v1.0.8), from the tests.

The node scripts in ``js/`` read a JSON list of jobs on stdin and write one result per job; each
script's header says what a job and a result hold. Node starts once per call, so batch the jobs.
Tests skip (not fail) when node or the npm package is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ml.hashing import to_hex

__all__ = ["MERKLE_TREE_JS", "RECEIPT_TREE_JS", "js_json", "run_js"]

_ROOT = Path(__file__).resolve().parents[2]
_JS = Path(__file__).resolve().parent / "js"
_PACKAGE = _ROOT / "contracts" / "node_modules" / "@openzeppelin" / "merkle-tree" / "package.json"

MERKLE_TREE_JS = _JS / "merkle_tree.mjs"
"""``of`` (with ``sortLeaves``) or ``load`` a tree; root, proofs, leaf hashes and dump."""
RECEIPT_TREE_JS = _JS / "receipt_tree.mjs"
"""Like :data:`MERKLE_TREE_JS`, plus ``validate()``, ``verify`` per value and forged checks."""


def js_json(value: Any) -> Any:
    """Leaf values as JSON the npm library reads exactly: big ints as strings, bytes as hex."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return to_hex(value)
    if isinstance(value, list | tuple):
        return [js_json(v) for v in value]
    raise TypeError(value)


def run_js(script: Path, jobs: list[dict[str, Any]], *, timeout: float = 300) -> list[Any]:
    """Run ``script`` under node on ``jobs``; its results, one per job (errors included)."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed, so the npm reference library cannot run")
    if not _PACKAGE.is_file():
        pytest.skip(f"{_PACKAGE.parent} is missing (run npm ci in contracts/)")
    done = subprocess.run(
        ["node", str(script)],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert len(results) == len(jobs)
    return results

"""tests/ledger/_standard_v1, the npm library's dump format, is strict: the cross-checks rely on it.

``test_merkle`` and ``test_receipt_merkle_crossimpl`` load the npm library's dumps to prove they
describe our trees; that proof is only as good as the loader's refusal of a dump whose hashes do
not add up, which is what this file checks.
"""

from __future__ import annotations

from typing import Any

import pytest

from ledger.formats.merkle import InvalidTreeError, StandardMerkleTree
from tests.ledger import _standard_v1 as standard_v1

UINT_BYTES = ["uint256", "bytes32"]


def _dump() -> dict[str, Any]:
    tree = StandardMerkleTree.of([[n, bytes([n]) * 32] for n in range(5)], UINT_BYTES)
    return standard_v1.dump(tree)


def _set(path: list[Any], new: Any) -> dict[str, Any]:
    dump = _dump()
    target: Any = dump
    for key in path[:-1]:
        target = target[key]
    if new is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = new
    return dump


_DELETE = object()


@pytest.mark.parametrize(
    ("dump", "message"),
    [
        (_set(["format"], "standard-v2"), "unknown format 'standard-v2'"),
        (_set(["leafEncoding"], _DELETE), "needs a 'leafEncoding' list"),
        (_set(["tree"], _DELETE), "needs 'tree' and 'values' lists"),
        (_set(["values"], []), "at least one leaf"),
        (_set(["tree", 0], "0x" + "00" * 32), "tree node 0 is not the hash of its children"),
        (_set(["tree", 8], "0x" + "00" * 32), "tree node 3 is not the hash of its children"),
        (_set(["tree", 2], "0x00"), "tree node 2 must be 32 bytes"),
        (_set(["values", 1, "treeIndex"], 0), "is not a leaf position"),
        (_set(["values", 1, "treeIndex"], 9), "is not a leaf position"),
        (_set(["values", 1, "value", 1], "0x" + "ff" * 32), "does not hash to tree node"),
        (_set(["values", 1, "value"], ["1"]), "needs 2 fields"),
        (_set(["values", 1], {"value": ["1", "0x" + "01" * 32]}), "needs 'value' and 'treeIndex'"),
    ],
)
def test_load_rejects_malformed_or_tampered_dumps(dump: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidTreeError, match=message):
        standard_v1.load(dump)


def test_load_rejects_swapped_leaves() -> None:
    dump = _dump()
    first, second = dump["values"][0], dump["values"][1]
    first["treeIndex"], second["treeIndex"] = second["treeIndex"], first["treeIndex"]
    with pytest.raises(InvalidTreeError, match="does not hash to tree node"):
        standard_v1.load(dump)


def test_load_rejects_non_json() -> None:
    with pytest.raises(InvalidTreeError, match="must be JSON"):
        standard_v1.load("{not json")
    with pytest.raises(InvalidTreeError, match="JSON object"):
        standard_v1.load("[]")

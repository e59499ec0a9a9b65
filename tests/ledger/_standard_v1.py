"""The npm library's ``standard-v1`` JSON (its ``tree.dump()`` and ``StandardMerkleTree.load``).

The service never serialises a tree (it stores roots and proofs), so this lives with the tests,
which use it to cross-check ``ledger.formats.merkle`` with ``@openzeppelin/merkle-tree`` in both
directions: our tree dumped here must equal the library's dump value for value, and the
library's dump loaded here must give our tree back.

:func:`load` re-hashes every leaf with ``eth_abi`` + ``eth_hash`` and every inner node with
``eth_hash``, not with ``ledger.formats.merkle``'s own encoder and hashers, so a dump that loads is
an independent check of both implementations. :func:`dump` reads the tree's node array and leaf
positions, which are private: the format *is* that array, and production has no other use for it.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from typing import Any

from eth_abi import encode as abi_encode
from eth_hash.auto import keccak
from eth_utils import to_checksum_address

from ledger.formats.merkle import InvalidTreeError, StandardMerkleTree
from ml.hashing import to_hex

__all__ = ["FORMAT", "dump", "load"]

FORMAT = "standard-v1"


def _int(value: Any) -> int:
    if isinstance(value, str):
        return int(value, 16) if value[:2] in ("0x", "0X") else int(value)
    if isinstance(value, bool):
        raise TypeError("a bool is not an integer here")
    return operator.index(value)


def _bytes(value: Any) -> bytes:
    if isinstance(value, str):
        if value[:2] not in ("0x", "0X"):
            raise ValueError(f"not 0x-hex: {value!r}")
        return bytes.fromhex(value[2:])
    return bytes(value)


# How each supported type is written in a dump (exactly as the npm library writes it) and read
# back as a native value for eth_abi. Another type is kept as it is: the tree refuses it.
_TO_JSON: dict[str, Callable[[Any], Any]] = {
    "uint256": lambda v: str(_int(v)),
    "bytes32": lambda v: to_hex(_bytes(v)),
    "address": to_checksum_address,
}
_FROM_JSON: dict[str, Callable[[Any], Any]] = {
    "uint256": _int,
    "bytes32": _bytes,
    "address": to_checksum_address,
}


def dump(tree: StandardMerkleTree) -> dict[str, Any]:
    """The tree as ``standard-v1`` JSON: integers as decimal strings, bytes as 0x-hex, addresses
    checksummed, as the npm library dumps them."""
    encoding = tree.leaf_encoding
    return {
        "format": FORMAT,
        "leafEncoding": list(encoding),
        "tree": [to_hex(node) for node in tree._tree],
        "values": [
            {
                "value": [_TO_JSON[t](v) for t, v in zip(encoding, value, strict=True)],
                "treeIndex": position,
            }
            for value, position in zip(tree.values, tree._tree_index, strict=True)
        ],
    }


def load(data: Mapping[str, Any] | str | bytes) -> StandardMerkleTree:
    """Rebuild a tree from a ``standard-v1`` dump (ours or the npm library's), checking every hash.

    Raises:
        InvalidTreeError: the format is unknown, a field is missing or malformed, or a node or
            leaf does not hash to what it should.
        LeafEncodingError: the leaf encoding has a type ``ledger.formats.merkle`` does not support.
    """
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise InvalidTreeError(f"a dumped tree must be JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise InvalidTreeError(f"a dumped tree is a JSON object, got {type(data).__name__}")
    # 1. Format and shape.
    if data.get("format") != FORMAT:
        raise InvalidTreeError(f"unknown format {data.get('format')!r}, expected {FORMAT!r}")
    encoding, raw_tree, raw_values = data.get("leafEncoding"), data.get("tree"), data.get("values")
    if not isinstance(encoding, list):
        raise InvalidTreeError("a dumped tree needs a 'leafEncoding' list")
    if not isinstance(raw_tree, list) or not isinstance(raw_values, list):
        raise InvalidTreeError("a dumped tree needs 'tree' and 'values' lists")
    n = len(raw_values)
    if n == 0:
        raise InvalidTreeError("a Merkle tree needs at least one leaf")
    if len(raw_tree) != 2 * n - 1:
        raise InvalidTreeError(f"{n} values need {2 * n - 1} tree nodes, got {len(raw_tree)}")
    tree = []
    for i, node in enumerate(raw_tree):
        try:
            raw = _bytes(node)
        except (TypeError, ValueError):
            raise InvalidTreeError(f"tree node {i} is not 0x-hex: {node!r}") from None
        if len(raw) != 32:
            raise InvalidTreeError(f"tree node {i} must be 32 bytes, got {len(raw)}")
        tree.append(raw)
    # 2. Every inner node is the hash of its children, smaller first.
    for i in range(n - 1):
        a, b = sorted((tree[2 * i + 1], tree[2 * i + 2]))
        if tree[i] != keccak(a + b):
            raise InvalidTreeError(f"tree node {i} is not the hash of its children")
    # 3. Every value sits on its own leaf and hashes to it.
    values: list[tuple[Any, ...]] = []
    positions: list[int] = []
    for i, entry in enumerate(raw_values):
        if not isinstance(entry, Mapping) or "value" not in entry or "treeIndex" not in entry:
            raise InvalidTreeError(f"values[{i}] needs 'value' and 'treeIndex'")
        position, raw_value = entry["treeIndex"], entry["value"]
        if type(position) is not int or not n - 1 <= position <= 2 * n - 2:
            raise InvalidTreeError(f"values[{i}].treeIndex {position!r} is not a leaf position")
        if not isinstance(raw_value, list) or len(raw_value) != len(encoding):
            raise InvalidTreeError(f"values[{i}].value needs {len(encoding)} fields")
        try:
            value = tuple(
                _FROM_JSON.get(t, lambda v: v)(v) for t, v in zip(encoding, raw_value, strict=True)
            )
            hashed = keccak(keccak(abi_encode(encoding, value)))
        except Exception as exc:  # eth_abi and the parsers raise many kinds
            raise InvalidTreeError(f"values[{i}] does not fit {encoding}: {exc}") from None
        if tree[position] != hashed:
            raise InvalidTreeError(f"values[{i}] does not hash to tree node {position}")
        values.append(value)
        positions.append(position)
    if len(set(positions)) != n:
        raise InvalidTreeError("two values claim the same leaf")
    return StandardMerkleTree(tree, tuple(values), positions, tuple(encoding))

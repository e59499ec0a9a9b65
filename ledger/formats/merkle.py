"""OpenZeppelin ``StandardMerkleTree`` in Python, byte for byte, for the leaves the ledger uses.

Prediction batches and dataset rows are recorded on chain as one Merkle root each, and an
inclusion proof has to check out everywhere an auditor might look: in this package, in the npm
library ``@openzeppelin/merkle-tree`` (v1.0.8) and in Solidity's ``MerkleProof.verify``. So this
module copies that library's format exactly rather than inventing one:

* leaf = ``keccak256(keccak256(abi.encode(types, values)))``. Hashing twice means a 64-byte leaf
  can never be passed off as an inner node (a second-preimage defence).
* inner node = ``keccak256`` of its two children, smaller first, so a proof needs no left/right
  flags.
* the tree is a complete binary tree stored as an array (node ``i`` has children ``2i+1`` and
  ``2i+2``), leaves at the end in reverse order, and by default the leaves are sorted by hash.

Leaves are tuples of ``bytes32``, ``uint256`` and ``address`` only: the two formats on chain are
the row leaf (:data:`ledger.formats.rows.ROW_LEAF_ENCODING`) and the receipt leaf
(:data:`ledger.formats.receipts.RECEIPT_LEAF_ENCODING`). Those types are all static and one ABI word
each, so ``abi.encode`` is the words side by side and is written out here; any other type (which
the npm library would take) is refused with :class:`LeafEncodingError` rather than half
supported. Building is the hot path (a batch or a dataset can have a million leaves), so bulk
hashing goes through :mod:`ledger.formats._keccak`'s native state. The tests check the encoding
against ``eth_abi`` and whole trees against the npm library.

:class:`LeafHashTree` is the same tree built from leaf hashes a caller already has (a request's
receipts, a batch of them): it is why this module runs past 400 lines, since it shares the
array layout with :class:`StandardMerkleTree` and must never drift from it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any

from eth_utils import is_checksum_address

from ledger.errors import LedgerError
from ledger.formats import _keccak, _treehash
from ml.hashing import to_hex

__all__ = [
    "SUPPORTED_TYPES",
    "InvalidProofError",
    "InvalidTreeError",
    "LeafEncodingError",
    "LeafHashTree",
    "LeafIndexError",
    "MerkleError",
    "StandardMerkleTree",
    "leaf_hash",
    "process_proof",
    "verify_proof",
]

SUPPORTED_TYPES = ("bytes32", "uint256", "address")
"""The ABI types a leaf field may have."""


class MerkleError(LedgerError, ValueError):
    """Root of everything this module rejects."""


class LeafEncodingError(MerkleError):
    """A leaf encoding is not a list of supported types, or a value does not fit it."""


class InvalidTreeError(MerkleError):
    """A tree is empty, or a serialised tree is malformed or its hashes do not add up."""


class InvalidProofError(MerkleError):
    """A root, leaf hash or proof element is not 32 bytes."""


class LeafIndexError(MerkleError, IndexError):
    """An index does not name one of the tree's values."""


# --------------------------------------------------------------------------------------------
# Encoding leaves: one 32-byte ABI word per field
# --------------------------------------------------------------------------------------------

_HEX = re.compile(r"0[xX](?:[0-9a-fA-F]{2})*")
_INT = re.compile(r"-?(?:0[xX][0-9a-fA-F]+|[0-9]+)")
_MAX_UINT256 = (1 << 256) - 1
_ADDRESS_PAD = bytes(12)
_Word = Callable[[Any], bytes]


def _hex_to_bytes(value: str) -> bytes:
    if not _HEX.fullmatch(value):
        raise ValueError("not 0x-prefixed hex with whole bytes")
    return bytes.fromhex(value[2:])


def _as_int(value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, bool):
        raise LeafEncodingError(f"expected an integer, got the bool {value}")
    if isinstance(value, str):
        if not _INT.fullmatch(value):
            raise LeafEncodingError(f"expected a decimal or 0x-hex integer string, got {value!r}")
        return int(value, 0 if "x" in value.lower() else 10)
    try:
        return operator.index(value)  # numpy integers, for instance
    except TypeError:
        raise LeafEncodingError(
            f"expected an integer, got {type(value).__name__} {value!r}"
        ) from None


def _as_bytes(value: Any) -> bytes:
    if type(value) is bytes:
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        try:
            return _hex_to_bytes(value)
        except ValueError:
            raise LeafEncodingError(f"expected 0x-prefixed hex, got {value!r}") from None
    raise LeafEncodingError(f"expected bytes or a 0x-hex string, got {type(value).__name__}")


def _uint256(value: Any) -> bytes:
    v = value if type(value) is int else _as_int(value)
    if not 0 <= v <= _MAX_UINT256:
        raise LeafEncodingError(f"{v} is out of range for uint256")
    return v.to_bytes(32, "big")


def _bytes32(value: Any) -> bytes:
    b = value if type(value) is bytes else _as_bytes(value)
    if len(b) != 32:
        raise LeafEncodingError(f"bytes32 needs exactly 32 bytes, got {len(b)}")
    return b


@lru_cache(maxsize=1024)
def _address_text(value: str) -> bytes:
    """The word of a hex address. Cached: a batch's receipts share one service address, and the
    checksum check (a keccak) would otherwise be most of the cost of encoding a receipt leaf."""
    body = value[2:]
    if (
        not value.startswith(("0x", "0X"))
        or len(body) != 40
        or (body.lower() != body and body.upper() != body and not is_checksum_address(value))
    ):
        raise LeafEncodingError(f"not a 20-byte hex address with a valid checksum: {value!r}")
    try:
        return _ADDRESS_PAD + _hex_to_bytes(value)
    except ValueError:
        raise LeafEncodingError(f"not a hex address: {value!r}") from None


def _address(value: Any) -> bytes:
    if isinstance(value, str):
        return _address_text(value)
    b = _as_bytes(value)
    if len(b) != 20:
        raise LeafEncodingError(f"an address is 20 bytes, got {len(b)}")
    return _ADDRESS_PAD + b


_WORDS: dict[str, _Word] = {"bytes32": _bytes32, "uint256": _uint256, "address": _address}


@lru_cache(maxsize=64)
def _words(leaf_encoding: tuple[str, ...]) -> tuple[_Word, ...]:
    if not leaf_encoding:
        raise LeafEncodingError("a leaf encoding needs at least one type")
    words = []
    for type_ in leaf_encoding:
        if not isinstance(type_, str):
            raise LeafEncodingError(f"leaf types are strings such as 'uint256', got {type_!r}")
        if type_ not in _WORDS:
            raise LeafEncodingError(
                f"unsupported leaf type {type_!r}: ledger leaves are made of "
                f"{', '.join(SUPPORTED_TYPES)}"
            )
        words.append(_WORDS[type_])
    return tuple(words)


def _compile(leaf_encoding: Sequence[str]) -> tuple[_Word, ...]:
    if isinstance(leaf_encoding, str):
        raise LeafEncodingError(
            f"leaf_encoding is a list of types, not the string {leaf_encoding!r}"
        )
    try:
        return _words(tuple(leaf_encoding))
    except TypeError:  # an unhashable item
        raise LeafEncodingError(f"leaf types are strings, got {list(leaf_encoding)!r}") from None


def _as_list(value: Any, what: str) -> Sequence[Any]:
    if type(value) is tuple or type(value) is list:
        return value
    if isinstance(value, str | bytes | bytearray) or not isinstance(value, Sequence):
        raise LeafEncodingError(f"{what} must be a list or tuple, got {type(value).__name__}")
    return value


def _encoder(words: tuple[_Word, ...]) -> Callable[[Sequence[Any]], bytes]:
    """``abi.encode`` for one leaf encoding: static one-word fields, side by side."""
    arity = len(words)

    def encode(value: Sequence[Any]) -> bytes:
        if len(_as_list(value, "a leaf value")) != arity:
            raise LeafEncodingError(f"expected {arity} fields, got {len(value)}")
        return b"".join([word(v) for word, v in zip(words, value, strict=True)])

    return encode


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _as_node(value: bytes | str, what: str) -> bytes:
    """A 32-byte node from bytes or 0x-hex (proofs usually arrive as JSON)."""
    if isinstance(value, str):
        try:
            raw = _hex_to_bytes(value)
        except ValueError as exc:
            raise InvalidProofError(f"{what} is not 0x-prefixed hex: {value!r}") from exc
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
    else:
        raise InvalidProofError(
            f"{what} must be bytes or a 0x-hex string, got {type(value).__name__}"
        )
    if len(raw) != 32:
        raise InvalidProofError(f"{what} must be 32 bytes, got {len(raw)}")
    return raw


# --------------------------------------------------------------------------------------------
# The tree
# --------------------------------------------------------------------------------------------

_ZERO32 = bytes(32)
_ENCODING_FAILURES = (LeafEncodingError, TypeError, ValueError, OverflowError)


def _layout(
    hashes: Sequence[bytes], sort_leaves: bool, node: Callable[[bytes, bytes], bytes]
) -> tuple[list[bytes], list[int]]:
    """The npm library's node array over leaf ``hashes`` (root first, leaves at the end in
    reverse order, sorted by hash when asked), and where each given leaf sits in it."""
    n = len(hashes)
    order = sorted(range(n), key=hashes.__getitem__) if sort_leaves else range(n)
    tree: list[bytes] = [_ZERO32] * (n - 1) + [hashes[i] for i in reversed(order)]
    tree_index = [0] * n
    last = 2 * n - 2
    for position, value_index in enumerate(order):
        tree_index[value_index] = last - position
    if _treehash.NATIVE and n > 2:
        # The children of nodes lo..start-1 are the contiguous tree[2lo+1 : 2start+1]: one
        # native call per level hashes them all (sorted pairs, the same bytes as ``node``).
        start = n - 1
        while start > 0:
            lo = start // 2
            parents = _treehash.parents(b"".join(tree[2 * lo + 1 : 2 * start + 1]))
            tree[lo:start] = [parents[k : k + 32] for k in range(0, len(parents), 32)]
            start = lo
    else:
        for i in range(n - 2, -1, -1):
            tree[i] = node(tree[2 * i + 1], tree[2 * i + 2])
    return tree, tree_index


class LeafHashTree:
    """A StandardMerkleTree known by its leaf hashes only (sorted, as the npm library's): the
    same root and proofs as :meth:`StandardMerkleTree.of` over the values behind them, for a
    caller that hashed its leaves already (the receipts of a request or of a batch)."""

    __slots__ = ("_tree", "_tree_index")

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        if not leaf_hashes:
            raise InvalidTreeError("a Merkle tree needs at least one leaf")
        if any(type(h) is not bytes or len(h) != 32 for h in leaf_hashes):
            raise InvalidTreeError("a leaf hash is 32 bytes")
        self._tree, self._tree_index = _layout(leaf_hashes, True, _keccak.FALLBACK.node)

    @property
    def root(self) -> bytes:
        """The 32-byte root."""
        return self._tree[0]

    def __len__(self) -> int:
        return len(self._tree_index)

    def proof(self, index: int) -> list[bytes]:
        """The sibling hashes from leaf ``index`` (in the order given) up to the root."""
        position, tree, proof = self._tree_index[index], self._tree, []
        while position > 0:
            proof.append(tree[position + 1 if position % 2 else position - 1])
            position = (position - 1) // 2
        return proof

    def proofs(self) -> list[list[bytes]]:
        """Every leaf's :meth:`proof`, in the order given: built from the root down, each
        node's proof its sibling then its parent's, so the shared upper levels are walked once
        (a request's receipts take all of them)."""
        tree = self._tree
        above: list[list[bytes]] = [[]]
        for position in range(1, len(tree)):
            sibling = tree[position + 1 if position % 2 else position - 1]
            above.append([sibling, *above[(position - 1) // 2]])
        return [above[position] for position in self._tree_index]


class StandardMerkleTree:
    """A Merkle tree in OpenZeppelin's standard format. Build it with :meth:`of`.

    ``values`` are kept in the order given; :meth:`proof` and :meth:`leaf_hash_at` take an index
    into that order, as the npm library's ``getProof(i)`` does, whatever the leaf order.
    """

    __slots__ = ("_encoding", "_tree", "_tree_index", "_values")

    def __init__(
        self,
        tree: list[bytes],
        values: tuple[tuple[Any, ...], ...],
        tree_index: list[int],
        leaf_encoding: tuple[str, ...],
    ) -> None:
        """Hold parts already checked: by :meth:`of`, or by a loader that re-hashed every node.

        ``tree`` is the node array (root first), ``tree_index[i]`` the position of ``values[i]``'s
        leaf in it.
        """
        _compile(leaf_encoding)
        self._tree = tree
        self._values = values
        self._tree_index = tree_index
        self._encoding = leaf_encoding

    @classmethod
    def of(
        cls,
        values: Sequence[Sequence[Any]],
        leaf_encoding: Sequence[str],
        *,
        sort_leaves: bool = True,
    ) -> StandardMerkleTree:
        """Build the tree of ``values``, each a sequence matching ``leaf_encoding``.

        Integers may be ints or decimal/0x-hex strings; bytes and addresses may be bytes or 0x-hex.

        Raises:
            LeafEncodingError: a type is not supported, or a value does not fit the encoding.
            InvalidTreeError: there are no values.
        """
        words = _compile(leaf_encoding)
        if isinstance(values, str | bytes) or not isinstance(values, Sequence | Iterable):
            raise LeafEncodingError(f"values must be a list of leaves, got {type(values).__name__}")
        kept = tuple(tuple(_as_list(v, f"value {i}")) for i, v in enumerate(values))
        if not kept:
            raise InvalidTreeError("a Merkle tree needs at least one leaf")
        leaf, node, _ = _keccak.bulk_hashers()
        encode = _encoder(words)
        try:
            hashes = [leaf(encode(v)) for v in kept]
        except _ENCODING_FAILURES:
            # Again, one by one, to say which value does not fit.
            hashes = []
            for i, v in enumerate(kept):
                try:
                    hashes.append(leaf(encode(v)))
                except _ENCODING_FAILURES as exc:
                    types = ",".join(leaf_encoding)
                    raise LeafEncodingError(
                        f"value {i} {_short(v)} does not fit ({types}): {exc}"
                    ) from None
        tree, tree_index = _layout(hashes, sort_leaves, node)
        return cls(tree, kept, tree_index, tuple(leaf_encoding))

    @property
    def root(self) -> bytes:
        """The 32-byte root, what goes on chain."""
        return self._tree[0]

    @property
    def leaf_encoding(self) -> tuple[str, ...]:
        """The ABI types of every leaf's fields."""
        return self._encoding

    @property
    def values(self) -> tuple[tuple[Any, ...], ...]:
        """The leaf values in the order they were given."""
        return self._values

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"StandardMerkleTree(root={to_hex(self.root)}, leaves={len(self)})"

    def leaf_hash(self, value: Sequence[Any]) -> bytes:
        """The leaf hash ``value`` would have in this tree (it need not be in it)."""
        return leaf_hash(self._encoding, value)

    def leaf_hash_at(self, index: int) -> bytes:
        """The leaf hash of ``values[index]``."""
        return self._tree[self._tree_index[self._check_index(index)]]

    def proof(self, index: int) -> list[bytes]:
        """The sibling hashes from ``values[index]``'s leaf up to the root."""
        position = self._tree_index[self._check_index(index)]
        proof = []
        tree = self._tree
        while position > 0:
            proof.append(tree[position + 1 if position % 2 else position - 1])
            position = (position - 1) // 2
        return proof

    def _check_index(self, index: int) -> int:
        if type(index) is not int:
            raise LeafIndexError(f"a value index is an int, got {type(index).__name__}")
        if not 0 <= index < len(self._values):
            raise LeafIndexError(f"index {index} is out of bounds for {len(self._values)} values")
        return index


def leaf_hash(leaf_encoding: Sequence[str], value: Sequence[Any]) -> bytes:
    """``keccak256(keccak256(abi.encode(leaf_encoding, value)))``, the standard leaf hash."""
    words = _compile(leaf_encoding)
    try:
        encoded = _encoder(words)(value)
    except _ENCODING_FAILURES as exc:
        raise LeafEncodingError(
            f"{_short(value)} does not fit {list(leaf_encoding)}: {exc}"
        ) from None
    return _keccak.FALLBACK.leaf(encoded)


def process_proof(leaf: bytes | str, proof: Sequence[bytes | str]) -> bytes:
    """The root ``proof`` leads to from the leaf hash ``leaf`` (``MerkleProof.processProof``)."""
    current = _as_node(leaf, "the leaf hash")
    if isinstance(proof, str | bytes):
        raise InvalidProofError("a proof is a list of 32-byte hashes")
    node = _keccak.FALLBACK.node
    for i, sibling in enumerate(proof):
        current = node(current, _as_node(sibling, f"proof[{i}]"))
    return current


def verify_proof(root: bytes | str, leaf: bytes | str, proof: Sequence[bytes | str]) -> bool:
    """Whether ``proof`` proves leaf hash ``leaf`` under ``root`` (``MerkleProof.verify``).

    Malformed input (a hash that is not 32 bytes) raises :class:`InvalidProofError` rather than
    returning False, so a bad caller is not mistaken for a bad proof.
    """
    return process_proof(leaf, proof) == _as_node(root, "the root")

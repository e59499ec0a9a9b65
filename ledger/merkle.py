"""OpenZeppelin ``StandardMerkleTree`` in Python, byte for byte.

Prediction batches are anchored on chain as one Merkle root, and a receipt's inclusion proof has to
check out everywhere an auditor might look: in this package, in the npm library
``@openzeppelin/merkle-tree`` (v1.0.8) and in Solidity's ``MerkleProof.verify``. So this module
copies that library's format exactly rather than inventing one:

* leaf = ``keccak256(keccak256(abi.encode(types, values)))``. Hashing twice means a 64-byte leaf
  can never be passed off as an inner node (a second-preimage defence).
* inner node = ``keccak256`` of its two children, smaller first, so a proof needs no left/right
  flags.
* the tree is a complete binary tree stored as an array (node ``i`` has children ``2i+1`` and
  ``2i+2``), leaves at the end in reverse order, and by default the leaves are sorted by hash.
* ``dump()`` / ``load()`` speak the library's ``standard-v1`` JSON, so trees round-trip with JS.

Building is the hot path (a batch can hold a million receipts), so leaves of elementary ABI types
are encoded by hand rather than through ``eth_abi``, and bulk hashing calls pycryptodome's keccak
core directly with one reusable state, which is about four times faster than a hash object per
call. Every shortcut is checked against ``eth_abi`` and the npm library in the tests.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import operator
import re
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eth_hash.auto import keccak
from eth_utils import is_checksum_address, to_checksum_address

from ledger.errors import LedgerError

__all__ = [
    "InvalidProofError",
    "InvalidTreeError",
    "LeafEncodingError",
    "LeafIndexError",
    "MerkleError",
    "StandardMerkleTree",
    "leaf_hash",
    "process_proof",
    "verify_proof",
]

FORMAT = "standard-v1"


class MerkleError(LedgerError, ValueError):
    """Root of everything this module rejects."""


class LeafEncodingError(MerkleError):
    """A leaf encoding is not a supported ABI type list, or a value does not fit it."""


class InvalidTreeError(MerkleError):
    """A tree is empty, or a dumped tree is malformed or its hashes do not add up."""


class InvalidProofError(MerkleError):
    """A root, leaf hash or proof element is not 32 bytes."""


class LeafIndexError(MerkleError, IndexError):
    """An index does not name one of the tree's values."""


# --------------------------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------------------------

_KECCAK_EMPTY = bytes.fromhex("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
_KECCAK_ABC = bytes.fromhex("4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45")


def _load_keccak_core() -> ctypes.CDLL | None:
    """pycryptodome's compiled keccak, loaded through our own handle (or None if unusable)."""
    try:
        spec = importlib.util.find_spec("Crypto.Hash._keccak")
        if spec is None or spec.origin is None:
            return None
        lib = ctypes.CDLL(spec.origin)
        for name in ("keccak_init", "keccak_reset", "keccak_absorb", "keccak_digest"):
            getattr(lib, name)
    except (OSError, AttributeError, ImportError):
        return None
    return lib


_CORE = _load_keccak_core()
_SIZE = {n: ctypes.c_size_t(n) for n in (32, 64)}
_PAD_KECCAK = ctypes.c_ubyte(0x01)  # original Keccak padding, not SHA3's 0x06


class _KeccakState(ctypes.c_void_p):
    """A native keccak state pointer that can carry a finalizer."""


def _fallback_leaf(encoded: bytes) -> bytes:
    return keccak(keccak(encoded))


def _fallback_node(a: bytes, b: bytes) -> bytes:
    return keccak(a + b if a <= b else b + a)


def _bulk_hashers() -> tuple[Callable[[bytes], bytes], Callable[[bytes, bytes], bytes]]:
    """``(leaf, node)`` hash functions sharing one native keccak state, for one job in one thread.

    ``leaf`` is the double hash of an encoded leaf, ``node`` the hash of a sorted pair. They fall
    back to ``eth_hash`` if the native core is missing or fails its known answers.
    """
    core = _CORE
    state = _KeccakState()
    if core is None or core.keccak_init(ctypes.byref(state), _SIZE[64], ctypes.c_ubyte(24)) != 0:
        return _fallback_leaf, _fallback_node
    out = ctypes.create_string_buffer(32)
    reset, absorb, digest = core.keccak_reset, core.keccak_absorb, core.keccak_digest
    size32, size64, pad = _SIZE[32], _SIZE[64], _PAD_KECCAK

    def leaf(encoded: bytes) -> bytes:
        n = len(encoded)
        reset(state)
        absorb(state, encoded, size64 if n == 64 else size32 if n == 32 else ctypes.c_size_t(n))
        digest(state, out, size32, pad)
        reset(state)
        absorb(state, out, size32)
        digest(state, out, size32, pad)
        return out.raw

    def node(a: bytes, b: bytes) -> bytes:
        reset(state)
        absorb(state, a + b if a <= b else b + a, size64)
        digest(state, out, size32, pad)
        return out.raw

    # Free the state when both closures are gone (a pointer must not travel as a plain int).
    weakref.finalize(state, core.keccak_destroy, ctypes.c_void_p(state.value))
    a, b = _KECCAK_EMPTY, _KECCAK_ABC
    if leaf(b"") != keccak(_KECCAK_EMPTY) or leaf(b"abc") != keccak(_KECCAK_ABC):
        return _fallback_leaf, _fallback_node
    if node(a, b) != _fallback_node(a, b) or node(b, a) != _fallback_node(a, b):
        return _fallback_leaf, _fallback_node
    return leaf, node


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


def _hex_to_bytes(value: str) -> bytes:
    if not _HEX.fullmatch(value):
        raise ValueError("not 0x-prefixed hex with whole bytes")
    return bytes.fromhex(value[2:])


_HEX = re.compile(r"0[xX](?:[0-9a-fA-F]{2})*")
_INT = re.compile(r"-?(?:0[xX][0-9a-fA-F]+|[0-9]+)")


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


# --------------------------------------------------------------------------------------------
# ABI encoding of leaves (the subset of abi.encode that leaves use, checked against eth_abi)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Codec:
    """How one ABI type validates, encodes and writes a value to JSON."""

    type: str
    dynamic: bool
    size: int  # bytes in the head when static
    encode: Callable[[Any], bytes]
    to_json: Callable[[Any], Any]


_ZERO32 = bytes(32)
_MAX_UINT256 = (1 << 256) - 1


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
        return operator.index(value)
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


def _uint_codec(type_: str, bits: int) -> _Codec:
    limit = 1 << bits

    def encode(value: Any) -> bytes:
        v = value if type(value) is int else _as_int(value)
        if not 0 <= v < limit:
            raise LeafEncodingError(f"{v} is out of range for {type_}")
        return v.to_bytes(32, "big")

    return _Codec(type_, False, 32, encode, lambda v: str(_as_int(v)))


def _int_codec(type_: str, bits: int) -> _Codec:
    low, high = -(1 << (bits - 1)), 1 << (bits - 1)

    def encode(value: Any) -> bytes:
        v = _as_int(value)
        if not low <= v < high:
            raise LeafEncodingError(f"{v} is out of range for {type_}")
        return v.to_bytes(32, "big", signed=True)

    return _Codec(type_, False, 32, encode, lambda v: str(_as_int(v)))


def _fixed_bytes_codec(type_: str, size: int) -> _Codec:
    pad = bytes(32 - size)

    def encode(value: Any) -> bytes:
        b = value if type(value) is bytes else _as_bytes(value)
        if len(b) != size:
            raise LeafEncodingError(f"{type_} needs exactly {size} bytes, got {len(b)}")
        return b + pad

    return _Codec(type_, False, 32, encode, lambda v: _hex(_as_bytes(v)))


def _address_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        body = value[2:]
        if (
            not value.startswith(("0x", "0X"))
            or len(body) != 40
            or (body.lower() != body and body.upper() != body and not is_checksum_address(value))
        ):
            raise LeafEncodingError(f"not a 20-byte hex address with a valid checksum: {value!r}")
        try:
            return _hex_to_bytes(value)
        except ValueError:
            raise LeafEncodingError(f"not a hex address: {value!r}") from None
    b = _as_bytes(value)
    if len(b) != 20:
        raise LeafEncodingError(f"an address is 20 bytes, got {len(b)}")
    return b


def _address_codec(type_: str) -> _Codec:
    pad = bytes(12)
    return _Codec(
        type_,
        False,
        32,
        lambda v: pad + _address_bytes(v),
        lambda v: to_checksum_address(_address_bytes(v)),
    )


def _bool_encode(value: Any) -> bytes:
    if value is True:
        return _ONE32
    if value is False:
        return _ZERO32
    raise LeafEncodingError(f"expected a bool, got {type(value).__name__} {value!r}")


_ONE32 = (1).to_bytes(32, "big")


def _dynamic_bytes(data: bytes) -> bytes:
    return len(data).to_bytes(32, "big") + data + bytes(-len(data) % 32)


def _utf8(value: Any) -> bytes:
    if not isinstance(value, str):
        raise LeafEncodingError(f"expected a str, got {type(value).__name__}")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise LeafEncodingError(f"string is not encodable as UTF-8: {exc}") from None


def _string_to_json(value: Any) -> str:
    _utf8(value)
    return value


def _bool_to_json(value: Any) -> bool:
    _bool_encode(value)
    return value


def _as_list(value: Any, what: str) -> Sequence[Any]:
    if type(value) is tuple or type(value) is list:
        return value
    if isinstance(value, str | bytes | bytearray) or not isinstance(value, Sequence):
        raise LeafEncodingError(f"{what} must be a list or tuple, got {type(value).__name__}")
    return value


def _encode_tuple(codecs: Sequence[_Codec], values: Sequence[Any]) -> bytes:
    """abi.encode of a tuple: static parts in place, dynamic parts behind offsets."""
    heads: list[bytes] = []
    tails: list[bytes] = []
    offset = sum(32 if c.dynamic else c.size for c in codecs)
    for codec, value in zip(codecs, values, strict=True):
        encoded = codec.encode(value)
        if codec.dynamic:
            heads.append(offset.to_bytes(32, "big"))
            tails.append(encoded)
            offset += len(encoded)
        else:
            heads.append(encoded)
    return b"".join(heads) + b"".join(tails)


def _array_codec(type_: str, item: _Codec, length: int | None) -> _Codec:
    def encode(value: Any) -> bytes:
        items = _as_list(value, type_)
        if length is not None and len(items) != length:
            raise LeafEncodingError(f"{type_} needs {length} items, got {len(items)}")
        body = _encode_tuple([item] * len(items), items)
        return body if length is not None else len(items).to_bytes(32, "big") + body

    def to_json(value: Any) -> list[Any]:
        return [item.to_json(v) for v in _as_list(value, type_)]

    dynamic = length is None or item.dynamic
    return _Codec(type_, dynamic, 0 if dynamic else item.size * length, encode, to_json)


def _tuple_codec(type_: str, components: Sequence[_Codec]) -> _Codec:
    def encode(value: Any) -> bytes:
        items = _as_list(value, type_)
        if len(items) != len(components):
            raise LeafEncodingError(f"{type_} needs {len(components)} items, got {len(items)}")
        return _encode_tuple(components, items)

    def to_json(value: Any) -> list[Any]:
        return [c.to_json(v) for c, v in zip(components, _as_list(value, type_), strict=True)]

    dynamic = any(c.dynamic for c in components)
    size = 0 if dynamic else sum(c.size for c in components)
    return _Codec(type_, dynamic, size, encode, to_json)


def _codec_for(node: Any) -> _Codec:
    """Build a codec from an ``eth_abi`` type-grammar node."""
    from eth_abi.grammar import TupleType

    if node.arrlist:
        item = _codec_for(node.item_type)
        dims = node.arrlist[-1]
        return _array_codec(node.to_type_str(), item, dims[0] if dims else None)
    if isinstance(node, TupleType):
        return _tuple_codec(node.to_type_str(), [_codec_for(c) for c in node.components])
    base, sub, text = node.base, node.sub, node.to_type_str()
    if base == "uint":
        return _uint_codec(text, sub or 256)
    if base == "int":
        return _int_codec(text, sub or 256)
    if base == "address":
        return _address_codec(text)
    if base == "bool":
        return _Codec(text, False, 32, _bool_encode, _bool_to_json)
    if base == "bytes" and sub is not None:
        return _fixed_bytes_codec(text, sub)
    if base == "bytes":
        return _Codec(
            text, True, 0, lambda v: _dynamic_bytes(_as_bytes(v)), lambda v: _hex(_as_bytes(v))
        )
    if base == "string":
        return _Codec(text, True, 0, lambda v: _dynamic_bytes(_utf8(v)), _string_to_json)
    raise LeafEncodingError(
        f"unsupported leaf type {text!r}: use (u)intN, bytesN, bytes, string, bool, address,"
        " arrays or tuples of them"
    )


@lru_cache(maxsize=256)
def _codecs(leaf_encoding: tuple[str, ...]) -> tuple[_Codec, ...]:
    from eth_abi.exceptions import ABITypeError, ParseError
    from eth_abi.grammar import parse

    if not leaf_encoding:
        raise LeafEncodingError("a leaf encoding needs at least one type")
    codecs = []
    for type_ in leaf_encoding:
        if not isinstance(type_, str):
            raise LeafEncodingError(f"leaf types are strings such as 'uint256', got {type_!r}")
        try:
            node = parse(type_)
            node.validate()
        except (ParseError, ABITypeError) as exc:
            raise LeafEncodingError(f"{type_!r} is not a valid ABI type: {exc}") from None
        codecs.append(_codec_for(node))
    return tuple(codecs)


def _compile(leaf_encoding: Sequence[str]) -> tuple[_Codec, ...]:
    if isinstance(leaf_encoding, str):
        raise LeafEncodingError(
            f"leaf_encoding is a list of types, not the string {leaf_encoding!r}"
        )
    return _codecs(tuple(leaf_encoding))


def _encoder(codecs: tuple[_Codec, ...]) -> Callable[[Any], bytes]:
    """The abi.encode function for one leaf encoding, with a flat path when all types are static."""
    arity = len(codecs)
    if any(c.dynamic for c in codecs):

        def encode(value: Any) -> bytes:
            if len(_as_list(value, "a leaf value")) != arity:
                raise LeafEncodingError(f"expected {arity} fields, got {len(value)}")
            return _encode_tuple(codecs, value)

        return encode
    encoders = [c.encode for c in codecs]

    def encode_static(value: Any) -> bytes:
        if len(_as_list(value, "a leaf value")) != arity:
            raise LeafEncodingError(f"expected {arity} fields, got {len(value)}")
        return b"".join([enc(v) for enc, v in zip(encoders, value, strict=True)])

    return encode_static


def _encoding_error(index: int, value: Any, codecs: Sequence[_Codec], exc: Exception) -> Exception:
    types = ",".join(c.type for c in codecs)
    return LeafEncodingError(f"value {index} {_short(value)} does not fit ({types}): {exc}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


# --------------------------------------------------------------------------------------------
# The tree
# --------------------------------------------------------------------------------------------


class StandardMerkleTree:
    """A Merkle tree in OpenZeppelin's standard format. Build it with :meth:`of` or :meth:`load`.

    ``values`` are kept in the order given; :meth:`proof` and :meth:`leaf_hash_at` take an index
    into that order, as the npm library's ``getProof(i)`` does, whatever the leaf order.
    """

    __slots__ = ("_codecs", "_encoding", "_tree", "_tree_index", "_values")

    def __init__(
        self,
        tree: list[bytes],
        values: tuple[tuple[Any, ...], ...],
        tree_index: list[int],
        leaf_encoding: tuple[str, ...],
    ) -> None:
        """Hold parts that :meth:`of` or :meth:`load` have already checked."""
        self._tree = tree
        self._values = values
        self._tree_index = tree_index
        self._encoding = leaf_encoding
        self._codecs = _compile(leaf_encoding)

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
        """
        codecs = _compile(leaf_encoding)
        if isinstance(values, str | bytes) or not isinstance(values, Sequence | Iterable):
            raise LeafEncodingError(f"values must be a list of leaves, got {type(values).__name__}")
        kept = tuple(tuple(_as_list(v, f"value {i}")) for i, v in enumerate(values))
        if not kept:
            raise InvalidTreeError("a Merkle tree needs at least one leaf")
        leaf, node = _bulk_hashers()
        encode = _encoder(codecs)
        try:
            hashes = [leaf(encode(v)) for v in kept]
        except (LeafEncodingError, TypeError, ValueError, OverflowError):
            hashes = []
            for i, v in enumerate(kept):
                try:
                    hashes.append(leaf(encode(v)))
                except (LeafEncodingError, TypeError, ValueError, OverflowError) as exc:
                    raise _encoding_error(i, v, codecs, exc) from None
        n = len(hashes)
        order = sorted(range(n), key=hashes.__getitem__) if sort_leaves else range(n)
        tree: list[bytes] = [_ZERO32] * (n - 1) + [hashes[i] for i in reversed(order)]
        tree_index = [0] * n
        last = 2 * n - 2
        for position, value_index in enumerate(order):
            tree_index[value_index] = last - position
        for i in range(n - 2, -1, -1):
            tree[i] = node(tree[2 * i + 1], tree[2 * i + 2])
        return cls(tree, kept, tree_index, tuple(leaf_encoding))

    @classmethod
    def load(cls, data: Mapping[str, Any] | str | bytes) -> StandardMerkleTree:
        """Rebuild a tree from :meth:`dump` output (ours or the npm library's), checking every hash.

        Raises:
            InvalidTreeError: the format is unknown, a field is missing or malformed, or a node or
                leaf does not match what it should hash to.
        """
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise InvalidTreeError(f"a dumped tree must be JSON: {exc}") from None
        if not isinstance(data, Mapping):
            raise InvalidTreeError(f"a dumped tree is a JSON object, got {type(data).__name__}")
        # 1. Format and encoding.
        if data.get("format") != FORMAT:
            raise InvalidTreeError(f"unknown format {data.get('format')!r}, expected {FORMAT!r}")
        encoding = data.get("leafEncoding")
        if not isinstance(encoding, list):
            raise InvalidTreeError("a dumped tree needs a 'leafEncoding' list")
        try:
            codecs = _compile(encoding)
        except LeafEncodingError as exc:
            raise InvalidTreeError(f"bad leafEncoding: {exc}") from None
        # 2. Nodes.
        raw_tree, raw_values = data.get("tree"), data.get("values")
        if not isinstance(raw_tree, list) or not isinstance(raw_values, list):
            raise InvalidTreeError("a dumped tree needs 'tree' and 'values' lists")
        if not raw_values:
            raise InvalidTreeError("a Merkle tree needs at least one leaf")
        n = len(raw_values)
        if len(raw_tree) != 2 * n - 1:
            raise InvalidTreeError(f"{n} values need {2 * n - 1} tree nodes, got {len(raw_tree)}")
        try:
            tree = [_as_node(node, f"tree node {i}") for i, node in enumerate(raw_tree)]
        except InvalidProofError as exc:
            raise InvalidTreeError(str(exc)) from None
        # 3. Every inner node is the hash of its children.
        leaf, node = _bulk_hashers()
        for i in range(n - 1):
            if tree[i] != node(tree[2 * i + 1], tree[2 * i + 2]):
                raise InvalidTreeError(f"tree node {i} is not the hash of its children")
        # 4. Every value sits on its own leaf and hashes to it.
        encode = _encoder(codecs)
        values: list[tuple[Any, ...]] = []
        tree_index: list[int] = []
        for i, entry in enumerate(raw_values):
            if not isinstance(entry, Mapping) or "value" not in entry or "treeIndex" not in entry:
                raise InvalidTreeError(f"values[{i}] needs 'value' and 'treeIndex'")
            ti = entry["treeIndex"]
            if type(ti) is not int or not n - 1 <= ti <= 2 * n - 2:
                raise InvalidTreeError(f"values[{i}].treeIndex {ti!r} is not a leaf position")
            try:
                value = tuple(_as_list(entry["value"], f"values[{i}].value"))
                hashed = leaf(encode(value))
            except (LeafEncodingError, TypeError, ValueError, OverflowError) as exc:
                raise InvalidTreeError(
                    str(_encoding_error(i, entry["value"], codecs, exc))
                ) from None
            if tree[ti] != hashed:
                raise InvalidTreeError(f"values[{i}] does not hash to tree node {ti}")
            values.append(value)
            tree_index.append(ti)
        if len(set(tree_index)) != n:
            raise InvalidTreeError("two values claim the same leaf")
        return cls(tree, tuple(values), tree_index, tuple(encoding))

    def dump(self) -> dict[str, Any]:
        """The npm library's ``standard-v1`` JSON object (load it there with ``.load``).

        Values are normalised so that JS reads them exactly: integers as decimal strings, bytes as
        0x-hex, addresses checksummed.
        """
        codecs = self._codecs
        return {
            "format": FORMAT,
            "leafEncoding": list(self._encoding),
            "tree": [_hex(node) for node in self._tree],
            "values": [
                {
                    "value": [c.to_json(v) for c, v in zip(codecs, value, strict=True)],
                    "treeIndex": ti,
                }
                for value, ti in zip(self._values, self._tree_index, strict=True)
            ],
        }

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
        return f"StandardMerkleTree(root={_hex(self.root)}, leaves={len(self)})"

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
    codecs = _compile(leaf_encoding)
    try:
        encoded = _encoder(codecs)(value)
    except (LeafEncodingError, TypeError, ValueError, OverflowError) as exc:
        raise LeafEncodingError(
            f"{_short(value)} does not fit {list(leaf_encoding)}: {exc}"
        ) from None
    return keccak(keccak(encoded))


def process_proof(leaf: bytes | str, proof: Sequence[bytes | str]) -> bytes:
    """The root ``proof`` leads to from the leaf hash ``leaf`` (``MerkleProof.processProof``)."""
    node = _as_node(leaf, "the leaf hash")
    if isinstance(proof, str | bytes):
        raise InvalidProofError("a proof is a list of 32-byte hashes")
    for i, sibling in enumerate(proof):
        node = _fallback_node(node, _as_node(sibling, f"proof[{i}]"))
    return node


def verify_proof(root: bytes | str, leaf: bytes | str, proof: Sequence[bytes | str]) -> bool:
    """Whether ``proof`` proves leaf hash ``leaf`` under ``root`` (``MerkleProof.verify``).

    Malformed input (a hash that is not 32 bytes) raises :class:`InvalidProofError` rather than
    returning False, so a bad caller is not mistaken for a bad proof.
    """
    return process_proof(leaf, proof) == _as_node(root, "the root")

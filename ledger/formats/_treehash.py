"""Bulk row-tree hashing: :mod:`ledger.formats._rowtree` (C) when built, else
ledger.formats._keccak's hashers.

Two functions, one buffer in and one out, so that a row tree of tens of millions of leaves costs
a few calls per megabyte rather than one call per hash:

* :func:`leaves` - the StandardMerkleTree leaf hash of each row leaf ``[first + k, digest_k]``
  (``["uint256", "bytes32"]``, :data:`ledger.formats.rows.ROW_LEAF_ENCODING`);
* :func:`parents` - the inner node of each consecutive 64-byte pair of 32-byte hashes;
* :func:`encoded_leaves` - the StandardMerkleTree leaf hash of each already encoded leaf of a
  fixed size (a request's prediction receipts: one call for all its rows instead of six
  ``ctypes`` calls a row).

The fallback gives the same bytes (the tests compare both on every call shape), only slower.
"""

from __future__ import annotations

from ledger.formats import _keccak

try:
    from ledger.formats import _rowtree  # type: ignore[attr-defined]
except ImportError:  # not built: the slower path serves
    _rowtree = None

__all__ = ["NATIVE", "SIMD", "encoded_leaves", "leaves", "parents"]

_NATIVE_INDEXES = 1 << 63  # the C code writes the index from 64 bits; larger ones take the fallback

NATIVE = _rowtree is not None
"""Whether the C module is built (it releases the GIL while it hashes)."""
SIMD = bool(_rowtree is not None and _rowtree.SIMD)
"""Whether it hashes eight messages at a time (AVX-512)."""


def leaves(digests: bytes | memoryview, first: int, *, native: bool = True) -> bytes:
    """Leaf hashes of rows ``first, first + 1, ...`` whose 32-byte digests are ``digests``."""
    if len(digests) % 32:
        raise ValueError("digests must be a whole number of 32-byte digests")
    if first < 0:
        raise ValueError(f"a row index is not negative, got {first}")
    if native and _rowtree is not None and first + len(digests) // 32 < _NATIVE_INDEXES:
        return _rowtree.leaves(digests, first)
    leaf = _keccak.bulk_hashers().leaf
    data = bytes(digests)
    return b"".join(
        leaf((first + k).to_bytes(32, "big") + data[32 * k : 32 * k + 32])
        for k in range(len(data) // 32)
    )


def parents(children: bytes | memoryview, *, native: bool = True) -> bytes:
    """The inner node of each 64-byte pair in ``children`` (32 bytes each, in order)."""
    if native and _rowtree is not None:
        return _rowtree.parents(children)
    if len(children) % 64:
        raise ValueError("children must be a whole number of 64-byte pairs")
    node = _keccak.bulk_hashers().node
    data = bytes(children)
    return b"".join(
        node(data[64 * k : 64 * k + 32], data[64 * k + 32 : 64 * k + 64])
        for k in range(len(data) // 64)
    )


def encoded_leaves(messages: bytes | memoryview, size: int, *, native: bool = True) -> bytes:
    """``keccak256(keccak256(m))`` of each ``size``-byte message ``m`` in ``messages``."""
    if size <= 0 or len(messages) % size:
        raise ValueError("messages must be a whole number of size-byte messages")
    if native and _rowtree is not None:
        return _rowtree.encoded_leaves(messages, size)
    leaf = _keccak.bulk_hashers().leaf
    data = bytes(messages)
    return b"".join(leaf(data[k : k + size]) for k in range(0, len(data), size))

"""keccak256 for building Merkle trees: pycryptodome's compiled core through one reusable state.

A tree of ``n`` leaves costs ``3n - 1`` keccak256 calls (two per leaf, one per inner node), and a
batch or a dataset can have a million leaves. Through ``eth_hash`` every call builds and frees a
hash object; here the core that pycryptodome already ships (``Crypto.Hash._keccak``) is loaded
through our own ``ctypes`` handle and one state is reset between messages, which is four to five
times faster (``python -m bench --only hashing`` measures both in the same run).

That core is a private part of pycryptodome, so nothing is trusted blindly: :func:`bulk_hashers`
checks it against known answers and ``eth_hash`` every time it hands out a state, and falls back
to :data:`FALLBACK` (plain ``eth_hash``, the same bytes, slower) if the library is missing, its
symbols moved, or an answer is wrong. The hashers' results never depend on which path is taken.

This module only hashes; what is hashed (the StandardMerkleTree format) is
:mod:`ledger.formats.merkle`.
"""

from __future__ import annotations

import ctypes
import importlib.util
import weakref
from collections.abc import Callable
from typing import NamedTuple

from eth_hash.auto import keccak

__all__ = ["FALLBACK", "Hashers", "bulk_hashers", "native_core_loaded"]

_KECCAK_EMPTY = bytes.fromhex("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
_KECCAK_ABC = bytes.fromhex("4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45")


class Hashers(NamedTuple):
    """The two hashes a StandardMerkleTree needs, and which implementation computes them."""

    leaf: Callable[[bytes], bytes]
    """``keccak256(keccak256(encoded))``: the double hash of an ABI-encoded leaf."""
    node: Callable[[bytes, bytes], bytes]
    """``keccak256(min(a, b) + max(a, b))``: an inner node from two 32-byte children."""
    native: bool
    """True when the calls go through the compiled core, False for :data:`FALLBACK`."""


def _fallback_leaf(encoded: bytes) -> bytes:
    return keccak(keccak(encoded))


def _fallback_node(a: bytes, b: bytes) -> bytes:
    return keccak(a + b if a <= b else b + a)


FALLBACK = Hashers(_fallback_leaf, _fallback_node, native=False)
"""``eth_hash`` hashers: stateless, so also the right choice for one-off hashes (one leaf, one
proof), where setting up and checking a native state would cost more than it saves."""


_SYMBOLS = ("keccak_init", "keccak_reset", "keccak_absorb", "keccak_digest", "keccak_destroy")


def _load_core() -> ctypes.CDLL | None:
    """pycryptodome's compiled keccak, loaded through our own handle (or None if unusable)."""
    try:
        spec = importlib.util.find_spec("Crypto.Hash._keccak")
        if spec is None or spec.origin is None:
            return None
        lib = ctypes.CDLL(spec.origin)
        for name in _SYMBOLS:
            getattr(lib, name)
    except (OSError, AttributeError, ImportError):
        return None
    return lib


_CORE = _load_core()
_SIZE = {n: ctypes.c_size_t(n) for n in (32, 64)}
_CAPACITY = _SIZE[64]  # keccak256: 512-bit capacity, 136-byte rate
_ROUNDS = ctypes.c_ubyte(24)
_PAD_KECCAK = ctypes.c_ubyte(0x01)  # original Keccak padding, not SHA3's 0x06


class _KeccakState(ctypes.c_void_p):
    """A native keccak state pointer that can carry a finalizer."""


def native_core_loaded() -> bool:
    """Whether pycryptodome's compiled keccak core was found and loaded in this process."""
    return _CORE is not None


def bulk_hashers(*, native: bool = True) -> Hashers:
    """Leaf and node hashers sharing one native keccak state, for one job in one thread.

    The state is not thread-safe: take a fresh pair per tree (it is cheap) and do not share it.
    It is freed when both functions are gone. ``native=False`` gives :data:`FALLBACK` outright
    (for benchmarks and tests); so does any failure of the native core or of its known answers.
    """
    core = _CORE
    if not native or core is None:
        return FALLBACK
    state = _KeccakState()
    if core.keccak_init(ctypes.byref(state), _CAPACITY, _ROUNDS) != 0:
        return FALLBACK
    # Free the state when both closures are gone (a pointer must not travel as a plain int).
    weakref.finalize(state, core.keccak_destroy, ctypes.c_void_p(state.value))
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

    a, b = _KECCAK_EMPTY, _KECCAK_ABC
    if leaf(b"") != keccak(_KECCAK_EMPTY) or leaf(b"abc") != keccak(_KECCAK_ABC):
        return FALLBACK
    if node(a, b) != _fallback_node(a, b) or node(b, a) != _fallback_node(a, b):
        return FALLBACK
    return Hashers(leaf, node, native=True)

"""ledger.formats._keccak, the native keccak state behind StandardMerkleTree: same bytes as
``eth_hash``.

The native path is an optimisation only, so these tests hold it to the fallback's answers, check
that it is really in use (losing it silently would slow every tree four to five times, unseen),
and that a core giving a wrong answer is never used.
"""

from __future__ import annotations

import random

import pytest
from eth_hash.auto import keccak
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.formats import _keccak
from ledger.formats.merkle import StandardMerkleTree
from ledger.formats.receipts import RECEIPT_LEAF_ENCODING


def test_the_native_keccak_core_is_in_use() -> None:
    """pycryptodome is a pinned dependency: losing the fast path silently is a regression."""
    assert _keccak.native_core_loaded()
    assert _keccak.bulk_hashers().native
    assert _keccak.bulk_hashers(native=False) is _keccak.FALLBACK


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=5), st.binary(min_size=64))
def test_native_hashers_equal_eth_hash(messages: list[bytes], pair: bytes) -> None:
    # Lengths up to 300 bytes cross the 136-byte rate: multi-block absorption is covered.
    native = _keccak.bulk_hashers()
    for message in messages:  # one state, reused across messages
        assert native.leaf(message) == keccak(keccak(message))
        assert native.leaf(message) == _keccak.FALLBACK.leaf(message)
    a, b = pair[:32], pair[32:64]
    assert native.node(a, b) == native.node(b, a) == keccak(min(a, b) + max(a, b))
    assert native.node(a, b) == _keccak.FALLBACK.node(b, a)


def test_two_states_do_not_interfere() -> None:
    first, second = _keccak.bulk_hashers(), _keccak.bulk_hashers()
    assert first.leaf(b"x" * 200) == second.leaf(b"x" * 200)
    assert first.leaf(b"a") != second.leaf(b"b")
    assert first.leaf(b"a") == keccak(keccak(b"a"))


def test_native_and_fallback_trees_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(5)
    service = to_checksum_address(rng.randbytes(20))
    values = [[*(rng.randbytes(32) for _ in range(4)), i, service] for i in range(33)]
    fast = StandardMerkleTree.of(values, RECEIPT_LEAF_ENCODING)
    monkeypatch.setattr(_keccak, "_CORE", None)
    assert not _keccak.native_core_loaded()
    assert _keccak.bulk_hashers() is _keccak.FALLBACK
    slow = StandardMerkleTree.of(values, RECEIPT_LEAF_ENCODING)
    assert fast.root == slow.root
    assert [fast.proof(i) for i in range(33)] == [slow.proof(i) for i in range(33)]


def test_a_native_core_giving_a_wrong_answer_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_keccak, "_KECCAK_ABC", bytes(32))  # the known answer no longer holds
    assert _keccak.bulk_hashers() is _keccak.FALLBACK

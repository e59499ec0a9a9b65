"""The write path's planning without a chain (ledger.writes._planning): chunks that fit a
block's gas and a pool's size, and the bisecting simulation that answers each reverting write
with its own error and sends the rest."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_utils import keccak

from ledger.chain._calls import GAS_BASE, batch_record_gas
from ledger.errors import (
    AlreadyRegistered,
    ChainUnavailable,
    LedgerError,
    NotAuthorized,
    TransactionFailed,
    UnknownRecord,
)
from ledger.records import DatasetInput, hash_hex
from ledger.writes._items import WriteInput, calldata_bound
from ledger.writes._planning import MAX_TX_BYTES, chunks, simulated


def h(n: int) -> str:
    return hash_hex(keccak(n.to_bytes(32, "big")))


@dataclass(eq=False)
class W:
    key: str
    item: WriteInput | None
    alone: bool = False


def dataset(n: int, parents: int = 0) -> W:
    parent_hashes = tuple(h(10_000 + n * 100 + i) for i in range(parents))
    derived = {"parents": parent_hashes, "transform_hash": h(950)} if parents else {}
    item = DatasetInput(h(n), rows_root=h(900 + n), row_count=n, schema_hash=h(901), **derived)
    return W(item.content_hash, item)


# -- chunks --------------------------------------------------------------------------------------


def test_one_chunk_when_everything_fits() -> None:
    writes = [dataset(n) for n in range(1, 6)]
    assert chunks("dataset", writes, 30_000_000) == [writes]


def test_chunks_close_before_the_gas_limit() -> None:
    writes = [dataset(n) for n in range(1, 8)]
    per_record = batch_record_gas(0)
    limit = GAS_BASE + 3 * per_record  # room for three records
    assert [len(c) for c in chunks("dataset", writes, limit)] == [3, 3, 1]
    assert [w for c in chunks("dataset", writes, limit) for w in c] == writes  # order kept


def test_chunks_close_before_the_pool_size_limit() -> None:
    big = [dataset(n, parents=200) for n in range(1, 20)]
    found = chunks("dataset", big, 10**12)
    assert len(found) > 1
    for chunk in found:
        assert sum(calldata_bound(w.item) for w in chunk) <= MAX_TX_BYTES  # type: ignore[arg-type]


def test_a_write_that_must_go_alone_gets_its_own_chunk() -> None:
    writes = [dataset(1), dataset(2), dataset(3)]
    writes[1].alone = True
    assert chunks("dataset", writes, 30_000_000) == [[writes[1]], [writes[0], writes[2]]]


def test_kinds_that_are_not_batched_go_one_per_transaction() -> None:
    writes = [W(f"revoke:{h(n)}", None) for n in range(3)]
    assert chunks("revoke", writes, 30_000_000) == [[w] for w in writes]


# -- simulated -----------------------------------------------------------------------------------


class Node:
    """A fake simulation: reverts naming the first bad record in a call, or naming none."""

    def __init__(self, bad: dict[str, LedgerError], silent: set[str] = frozenset()) -> None:
        self.bad, self.silent, self.calls = bad, silent, 0

    def __call__(self, writes: list[W]) -> None:
        self.calls += 1
        for write in writes:
            if write.key in self.bad:
                raise self.bad[write.key]
            if write.key in self.silent:
                raise TransactionFailed("reverted without a reason")


def test_every_write_passes() -> None:
    writes = [dataset(n) for n in range(4)]
    failed: list[tuple[W, LedgerError]] = []
    assert simulated(writes, Node({}), lambda w, e: failed.append((w, e))) == writes
    assert failed == []


def test_a_revert_naming_a_record_fails_that_write_only() -> None:
    writes = [dataset(n) for n in range(4)]
    taken = AlreadyRegistered("registered already", record_hash=writes[2].key)
    failed: list[tuple[W, LedgerError]] = []
    survivors = simulated(writes, Node({writes[2].key: taken}), lambda w, e: failed.append((w, e)))
    assert survivors == [writes[0], writes[1], writes[3]]
    assert failed == [(writes[2], taken)]


def test_an_unknown_parent_fails_the_write_that_names_it() -> None:
    first, child = dataset(1), dataset(7, parents=1)
    parent_hash = child.item.parents[0]  # type: ignore[union-attr]
    unknown = UnknownRecord("no such parent", record_hash=parent_hash)
    failed: list[W] = []
    survivors = simulated([first, child], Node({child.key: unknown}), lambda w, e: failed.append(w))
    assert survivors == [first] and failed == [child]


def test_a_revert_naming_nothing_is_bisected_down_to_its_write() -> None:
    writes = [dataset(n) for n in range(8)]
    node = Node({}, silent={writes[5].key})
    failed: list[W] = []
    survivors = simulated(writes, node, lambda w, e: failed.append(w))
    assert failed == [writes[5]]
    assert survivors == [w for w in writes if w is not writes[5]]
    assert node.calls <= 1 + 2 * 3  # a bisection, not one call per write


@pytest.mark.parametrize("refusal", [NotAuthorized("not a registrar"), ChainUnavailable("away")])
def test_a_refusal_of_the_sender_fails_every_write_at_once(refusal: LedgerError) -> None:
    writes = [dataset(n) for n in range(4)]
    node = Node({writes[0].key: refusal})
    failed: list[W] = []
    assert simulated(writes, node, lambda w, e: failed.append(w)) == []
    assert failed == writes and node.calls == 1

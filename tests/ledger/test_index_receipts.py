"""Blocks indexed from their writer's receipts (``ledger.index._receipts``), on every backend and
both engines: the rows equal what a rebuild from the chain gives, a block the receipts cannot
vouch for is left to the sync and changes nothing, and the sync still finds and rewinds a
receipt-fed block that left the canonical chain."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak

from ledger.chain.backends.embedded import EmbeddedBackend
from ledger.chain.client import LedgerClient
from ledger.index import _sql as sql_index
from ledger.index import _sync as index_sync
from ledger.index.sqlite import LedgerIndex
from ledger.records import DatasetInput, hash_hex
from ledger.writes._items import RevokeInput
from ledger.writes.pipeline import WritePipeline


def h(n: int) -> str:
    return hash_hex(keccak(n.to_bytes(32, "big")))


def dataset(n: int, parents: tuple[str, ...] = ()) -> DatasetInput:
    return DatasetInput(
        h(n),
        rows_root=h(1000 + n),
        row_count=n,
        schema_hash=h(2000),
        metadata_hash=h(3000 + n),
        parents=parents,
        transform_hash=h(4000) if parents else "0x" + "00" * 32,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """An empty index on each engine (PostgreSQL on the embedded chain only, except for the
    reorganisation, which only anvil can make)."""
    if request.param == "sqlite":
        with LedgerIndex(tmp_path / "index.sqlite") as opened:
            yield opened
        return
    reorganises = "reorganisation" in request.node.name
    if "anvil" in request.node.callspec.params.values() and not reorganises:
        pytest.skip("the engine is what varies: PostgreSQL runs on the embedded chain only")
    from ledger.index.postgres import PostgresIndex

    with PostgresIndex(request.getfixturevalue("empty_pg")) as opened:
        yield opened


def dump(index: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the index, ``meta`` included, sorted: two indexes of the
    same chain must hold exactly the same."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with index._db.read() as conn:
        for table in (*index_sync._DATA_TABLES, "meta"):
            rows = conn.execute(f"SELECT * FROM {table}").fetchall()
            # a sqlite3.Row iterates over its values: its keys() are the column names
            named = [r if isinstance(r, dict) else {k: r[k] for k in r.keys()} for r in rows]  # noqa: SIM118
            tables[table] = sorted(tuple(sorted(r.items())) for r in named)
    return tables


def rebuilt(index: Any, client: LedgerClient) -> dict[str, list[tuple[Any, ...]]]:
    """What the same index holds after a rebuild from the chain (in place)."""
    index.rebuild(client)
    return dump(index)


@pytest.fixture
def client(deployed: Any) -> LedgerClient:
    return deployed.registrar


@pytest.fixture
def fed(client: LedgerClient, index: Any) -> Iterator[tuple[WritePipeline, list[bool]]]:
    """A write pipeline as the service wires it: every final transaction's block offered to
    the index with its receipt; the list holds what the index answered each time."""
    embedded = isinstance(client.backend, EmbeddedBackend)
    writes = WritePipeline(client, simulate_registrations=not embedded)
    answers: list[bool] = []
    writes.on_included = lambda block, receipts: answers.append(
        index.index_block(client, block, receipts)
    )
    yield writes, answers
    writes.close()


def mined(client: LedgerClient, tx_hash: str) -> tuple[Any, Any]:
    """A mined transaction's block header and receipt, as the pipeline hands them over."""
    receipt = client.backend.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    return client.get_block("0x" + bytes(receipt["blockHash"]).hex()), receipt


def test_blocks_written_through_the_pipeline_are_indexed_from_their_receipts(
    chain, client, index, fed
):
    writes, answers = fed
    chain.account()  # a transfer: the head the index syncs to holds no event of the ledger
    index.sync(client)
    for n in range(1, 5):
        included = writes.write(dataset(n, parents=(h(1),) if n > 1 else ()))
        assert index.last_block == included.block_number  # no sync came in between
    assert answers == [True] * 4
    assert index.dataset(h(3)).parents == (h(1),)
    assert index.sync(client) == 0  # the sync confirms: nothing left to read
    assert dump(index) == rebuilt(index, client)


def test_the_index_knows_the_blocks_it_indexed_here_until_a_sync(client, index, monkeypatch):
    index.sync(client)
    written = client.register_dataset(h(1), rows_root=h(2), row_count=1, schema_hash=h(3))
    block, receipt = mined(client, written.tx_hash)
    assert not index.holds(block["number"])
    assert index.index_block(client, block, [receipt]) is True
    reads: list[str] = []
    real_query = index._db.query
    monkeypatch.setattr(index._db, "query", lambda *a: reads.append(a[0]) or real_query(*a))
    assert index.holds(block["number"]) and index.holds(block["number"] - 1)
    assert reads == []  # known here: no read
    assert not index.holds(block["number"] + 1)  # not known here: read
    assert len(reads) == 1
    index.sync(client)  # a sync may rewind the head: what was known here is read again
    reads.clear()
    assert index.holds(block["number"]) and len(reads) == 1


def test_a_block_holding_several_of_the_pipelines_transactions_is_indexed_from_them(
    chain, client, index, fed
):
    """Revocations go one transaction each; held in the node's pool, they are mined in one
    block, which the waiter hands over once with all their receipts (one at a time, the index
    would see a block with transactions it has no receipt for, and leave it to the sync)."""
    if chain.node is None:
        pytest.skip("the embedded chain mines every transaction in a block of its own")
    writes, answers = fed
    for n in (1, 2, 3):
        writes.write(dataset(n))
    index.sync(client)
    answers.clear()
    chain.node.rpc("evm_setAutomine", False)
    try:
        futures = writes.submit_many([RevokeInput(h(n), "bad rows") for n in (1, 2, 3)])
        _wait_for_pool(chain.node, 3)
        chain.node.rpc("evm_mine")
        done = [future.result(timeout=60) for future in futures]
    finally:
        chain.node.rpc("evm_setAutomine", True)
    assert len({d.tx_hash for d in done}) == 3 and len({d.block_number for d in done}) == 1
    assert answers == [True]  # one block, told once, indexed from its receipts
    assert index.last_block == done[0].block_number
    assert all(index.dataset(h(n)).revocation is not None for n in (1, 2, 3))
    assert dump(index) == rebuilt(index, client)


def _wait_for_pool(node: Any, count: int) -> None:
    deadline = time.monotonic() + 60
    while len(node.rpc("eth_getBlockByNumber", "pending", False)["transactions"]) < count:
        assert time.monotonic() < deadline, f"{count} transactions never reached the pool"
        time.sleep(0.05)


def test_a_block_after_one_the_index_has_not_read_is_left_to_the_sync(client, index, fed):
    writes, answers = fed
    index.sync(client)
    client.register_dataset(h(7), rows_root=h(8), row_count=1, schema_hash=h(9))  # not indexed
    before = dump(index)
    writes.write(dataset(1))
    assert answers == [False]
    assert dump(index) == before  # nothing written
    assert index.sync(client) == 2
    assert dump(index) == rebuilt(index, client)


def test_a_block_the_receipts_cannot_vouch_for_changes_nothing(client, index):
    index.sync(client)
    written = client.register_dataset(h(1), rows_root=h(2), row_count=1, schema_hash=h(3))
    block, receipt = mined(client, written.tx_hash)
    before = dump(index)
    other_tx = bytes.fromhex(h(99)[2:])
    refused = {
        "another transaction in the block": ({**block, "transactions": [*block["transactions"],
                                                                        other_tx]}, [receipt]),
        "no receipts": (block, []),
        "a parent that is not the indexed head": ({**block, "parentHash": other_tx}, [receipt]),
        "a receipt of another block": (block, [{**receipt, "blockHash": other_tx}]),
    }  # fmt: skip
    for why, (offered, receipts) in refused.items():
        assert index.index_block(client, offered, receipts) is False, why
        assert dump(index) == before, why
    assert index.index_block(client, block, [receipt]) is True  # the block as it is: indexed
    assert dump(index) == rebuilt(index, client)


def test_blocks_not_final_at_once_are_left_to_the_sync(client, index, monkeypatch):
    index.sync(client)
    written = client.register_dataset(h(1), rows_root=h(2), row_count=1, schema_hash=h(3))
    block, receipt = mined(client, written.tx_hash)
    monkeypatch.setattr(type(client.backend), "confirmations", property(lambda _: 2))
    assert index.index_block(client, block, [receipt]) is False
    assert index.dataset(h(1)) is None


def test_a_sync_in_progress_is_waited_for_briefly(client, index, monkeypatch):
    index.sync(client)
    written = client.register_dataset(h(1), rows_root=h(2), row_count=1, schema_hash=h(3))
    block, receipt = mined(client, written.tx_hash)
    monkeypatch.setattr(sql_index, "INDEX_BLOCK_WAIT", 0.01)
    before = dump(index)
    with index._sync_lock:  # a sync that lasts: the block is its to read
        assert index.index_block(client, block, [receipt]) is False
    assert dump(index) == before
    # a sync that ends within the wait: the block is indexed from its receipts after it
    monkeypatch.setattr(sql_index, "INDEX_BLOCK_WAIT", 30.0)
    index._sync_lock.acquire()
    ending = threading.Timer(0.2, index._sync_lock.release)
    ending.start()
    try:
        assert index.index_block(client, block, [receipt]) is True
    finally:
        ending.join()
    assert dump(index) == rebuilt(index, client)


def test_a_receipt_fed_block_that_leaves_the_chain_is_rewound_by_the_sync_reorganisation(
    chain, client, index, fed
):
    if chain.node is None:
        pytest.skip("the embedded chain never reorganises")
    writes, answers = fed
    index.sync(client)
    kept = writes.write(dataset(1))
    orphan = writes.write(dataset(2))
    assert answers == [True, True]
    rewinds: list[Any] = []
    index.on_rewind = rewinds.append
    chain.node.rpc("anvil_reorg", 1, [])  # the block with dataset 2 replaced by an empty one
    index.sync(client)
    assert [(r.fork_block, r.tx_hashes) for r in rewinds] == [
        (kept.block_number, (orphan.tx_hash,))
    ]
    assert index.dataset(h(2)) is None and index.dataset(h(1)) is not None
    assert dump(index) == rebuilt(index, client)


def test_an_index_that_lost_its_last_commits_reads_them_again(client, tmp_path):
    # What a power cut can do to a file in synchronous=NORMAL: take the last commits away,
    # leaving the file as it was a few commits earlier (here: a copy taken then).
    embedded = isinstance(client.backend, EmbeddedBackend)
    path = tmp_path / "index.sqlite"
    with (
        LedgerIndex(path) as index,
        closing(WritePipeline(client, simulate_registrations=not embedded)) as writes,
    ):
        index.sync(client)
        writes.on_included = lambda block, receipts: index.index_block(client, block, receipts)
        writes.write(dataset(1))
        index._db.get().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        earlier = path.read_bytes()
        for n in (2, 3):
            writes.write(dataset(n))
        writes.on_included = None
    for leftover in tmp_path.glob("index.sqlite*"):
        leftover.unlink()
    path.write_bytes(earlier)
    with LedgerIndex(path) as index:
        assert index.dataset(h(3)) is None  # lost with the commits
        assert index.sync(client) == 2
        assert dump(index) == rebuilt(index, client)

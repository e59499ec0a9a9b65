"""The event index, on every backend: each query against the client's own event reads, incremental
and chunked syncs, paging, lag, rebuilds that give identical results, and the guards that keep an
index bound to one contract on one chain."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from eth_utils import keccak

import ledger.index as index_module
from ledger.client import LedgerClient
from ledger.index import IndexedBatch, IndexedDataset, IndexedModel, IndexMismatch, LedgerIndex
from ledger.records import ZERO_HASH, RecordRevoked, hash_hex

UINT64_MAX = 2**64 - 1


def h(n: int) -> str:
    """A distinct, nonzero 32-byte hash for test number ``n``."""
    return hash_hex(keccak(n.to_bytes(32, "big")))


RAW, RAW2, CLEAN, MERGED = h(1), h(2), h(3), h(4)
MODEL1, MODEL2 = h(10), h(11)
BATCH1, BATCH2, BATCH3 = h(20), h(21), h(22)
DATASETS = (RAW, RAW2, CLEAN, MERGED)
MODELS = (MODEL1, MODEL2)
BATCHES = (BATCH1, BATCH2, BATCH3)


def register(client: LedgerClient, content_hash: str, parents=(), transform=ZERO_HASH, rows=42):
    return client.register_dataset(
        content_hash,
        rows_root=h(900 + int(content_hash[2:6], 16)),
        row_count=rows,
        schema_hash=h(901),
        metadata_hash=h(902),
        parents=parents,
        transform_hash=transform,
    )


def populate(client: LedgerClient) -> int:
    """Raw and derived datasets, models on one and two datasets, batches, two revocations.

    Returns the number of record events written."""
    register(client, RAW)
    register(client, RAW2, rows=7)
    register(client, CLEAN, parents=[RAW], transform=h(50))
    register(client, MERGED, parents=[RAW, RAW2], transform=h(51))
    client.register_model(MODEL1, datasets=[CLEAN], metadata_hash=h(60))
    client.register_model(MODEL2, datasets=[CLEAN, RAW2], metadata_hash=h(61))
    client.anchor_predictions(MODEL1, BATCH1, 5)
    client.anchor_predictions(MODEL1, BATCH2, 7)
    client.anchor_predictions(MODEL2, BATCH3, 1)
    client.revoke(RAW2, "licence withdrawn")
    client.revoke(BATCH2, "inputs were mislabelled")
    return 11


# -- what the index should hold, read straight from the chain through the client -------------


def _revocation_fields(client: LedgerClient, record_hash: str) -> dict:
    revocation: RecordRevoked | None = client.revocation(record_hash)
    if revocation is None:
        return {
            "revoked": False,
            "revoked_reason": None,
            "revoked_by": None,
            "revoked_tx_hash": None,
            "revoked_block": None,
            "revoked_at": None,
        }
    return {
        "revoked": True,
        "revoked_reason": revocation.reason,
        "revoked_by": revocation.revoker,
        "revoked_tx_hash": revocation.tx_hash,
        "revoked_block": revocation.block_number,
        "revoked_at": client.block_timestamp(revocation.block_number),
    }


def expected_dataset(client: LedgerClient, content_hash: str) -> IndexedDataset:
    e = client.dataset_registration(content_hash)
    return IndexedDataset(
        content_hash=e.content_hash,
        rows_root=e.rows_root,
        row_count=e.row_count,
        schema_hash=e.schema_hash,
        metadata_hash=e.metadata_hash,
        parents=e.parents,
        transform_hash=e.transform_hash,
        registrant=e.registrant,
        tx_hash=e.tx_hash,
        block_number=e.block_number,
        registered_at=client.get_record(content_hash).registered_at,
        **_revocation_fields(client, content_hash),
    )


def expected_model(client: LedgerClient, model_hash: str) -> IndexedModel:
    e = client.model_registration(model_hash)
    return IndexedModel(
        model_hash=e.model_hash,
        datasets=e.datasets,
        metadata_hash=e.metadata_hash,
        registrant=e.registrant,
        tx_hash=e.tx_hash,
        block_number=e.block_number,
        registered_at=client.get_record(model_hash).registered_at,
        **_revocation_fields(client, model_hash),
    )


def expected_batch(client: LedgerClient, root: str) -> IndexedBatch:
    e = client.batch_anchoring(root)
    return IndexedBatch(
        root=e.root,
        model_hash=e.model_hash,
        count=e.count,
        registrant=e.registrant,
        tx_hash=e.tx_hash,
        block_number=e.block_number,
        registered_at=client.get_record(root).registered_at,
        **_revocation_fields(client, root),
    )


def snapshot(index: LedgerIndex) -> dict:
    """Every query's answer, for comparing two indexes of the same chain."""
    return {
        "datasets": index.datasets(0, 1000),
        "models": index.models(0, 1000),
        "one": [index.dataset(d) for d in DATASETS]
        + [index.model(m) for m in MODELS]
        + [index.batch(b) for b in BATCHES],
        "kinds": [index.kind_of(x) for x in (*DATASETS, *MODELS, *BATCHES, h(999))],
        "batches_of": [index.batches_of_model(m) for m in MODELS],
        "children": [index.children_of_dataset(d) for d in DATASETS],
        "models_of": [index.models_of_dataset(d) for d in DATASETS],
        "last_block": index.last_block,
    }


@pytest.fixture
def index(tmp_path: Path):
    with LedgerIndex(tmp_path / "index.sqlite") as opened:
        yield opened


# -- sync and the records it indexes -------------------------------------------------------------


def test_every_query_returns_the_fields_the_chain_holds(deployed, index):
    client = deployed.registrar
    populate(client)
    index.sync(client)
    for d in DATASETS:
        assert index.dataset(d) == expected_dataset(client, d)
    for m in MODELS:
        assert index.model(m) == expected_model(client, m)
    for b in BATCHES:
        assert index.batch(b) == expected_batch(client, b)
    assert index.dataset(RAW2).revoked and index.dataset(RAW2).revoked_reason == "licence withdrawn"
    assert index.dataset(RAW2).revoked_by == client.account.address
    assert not index.dataset(RAW).revoked and index.dataset(RAW).revoked_at is None
    assert index.dataset(MERGED).parents == (RAW, RAW2)
    assert index.model(MODEL2).datasets == (CLEAN, RAW2)


def test_kind_of_and_unknown_hashes(deployed, index):
    populate(deployed.registrar)
    index.sync(deployed.registrar)
    assert [index.kind_of(x) for x in (RAW, MODEL1, BATCH1)] == ["dataset", "model", "batch"]
    assert index.kind_of(h(999)) is None
    assert index.dataset(h(999)) is None and index.model(h(999)) is None
    assert index.batch(h(999)) is None
    # a hash of another kind is not found as this kind
    assert index.dataset(MODEL1) is None and index.model(RAW) is None and index.batch(RAW) is None
    # hashes are normalised like everywhere else: bytes, upper case, no prefix
    assert index.dataset(bytes.fromhex(RAW[2:])) == index.dataset(RAW[2:].upper())


def test_relations_newest_first(deployed, index):
    populate(deployed.registrar)
    index.sync(deployed.registrar)
    assert [d.content_hash for d in index.children_of_dataset(RAW)] == [MERGED, CLEAN]
    assert [d.content_hash for d in index.children_of_dataset(RAW2)] == [MERGED]
    assert index.children_of_dataset(CLEAN) == []
    assert [m.model_hash for m in index.models_of_dataset(CLEAN)] == [MODEL2, MODEL1]
    assert [m.model_hash for m in index.models_of_dataset(RAW2)] == [MODEL2]
    assert index.models_of_dataset(RAW) == []
    assert [b.root for b in index.batches_of_model(MODEL1)] == [BATCH2, BATCH1]
    assert [b.root for b in index.batches_of_model(MODEL2)] == [BATCH3]
    assert index.batches_of_model(h(999)) == []


def test_incremental_sync_applies_only_new_events(deployed, index):
    client = deployed.registrar
    written = populate(client)
    assert index.sync(client) == written
    assert index.sync(client) == 0
    assert index.last_block == client.latest_block()
    register(client, h(5), parents=[CLEAN], transform=h(52))
    client.revoke(MODEL1, "trained on a stale split")
    assert index.sync(client) == 2
    assert index.sync(client) == 0
    assert index.dataset(h(5)) == expected_dataset(client, h(5))
    assert index.model(MODEL1) == expected_model(client, MODEL1)
    assert index.model(MODEL1).revoked


def test_sync_in_small_chunks_gives_the_same_index(deployed, tmp_path):
    client = deployed.registrar
    populate(client)
    with (
        LedgerIndex(tmp_path / "a.sqlite") as whole,
        LedgerIndex(tmp_path / "b.sqlite", chunk_blocks=1) as chunked,
        LedgerIndex(tmp_path / "c.sqlite", chunk_blocks=3) as threes,
    ):
        assert whole.sync(client) == chunked.sync(client) == threes.sync(client) == 11
        assert snapshot(whole) == snapshot(chunked) == snapshot(threes)


def test_the_index_survives_reopening(deployed, tmp_path):
    client = deployed.registrar
    populate(client)
    with LedgerIndex(tmp_path / "index.sqlite") as first:
        first.sync(client)
        before = snapshot(first)
    with LedgerIndex(tmp_path / "index.sqlite") as again:
        assert snapshot(again) == before
        assert again.sync(client) == 0


def test_uint64_counts_beyond_sqlite_integers(deployed, index):
    client = deployed.registrar
    register(client, RAW, rows=UINT64_MAX)
    client.register_model(MODEL1, datasets=[RAW], metadata_hash=h(60))
    client.anchor_predictions(MODEL1, BATCH1, UINT64_MAX)
    index.sync(client)
    assert index.dataset(RAW).row_count == UINT64_MAX
    assert index.batch(BATCH1).count == UINT64_MAX


# -- rebuild ----------------------------------------------------------------------------------


def test_rebuild_after_deleting_the_file_gives_identical_results(deployed, tmp_path):
    client = deployed.registrar
    populate(client)
    path = tmp_path / "index.sqlite"
    with LedgerIndex(path) as first:
        # two syncs, so the rebuilt index must agree with an incrementally built one
        first.sync(client)
        register(client, h(5), parents=[CLEAN], transform=h(52))
        first.sync(client)
        before = snapshot(first)
    for leftover in tmp_path.glob("index.sqlite*"):  # the database and its WAL files
        leftover.unlink()
    with LedgerIndex(path) as rebuilt:
        assert rebuilt.rebuild(client) == 12
        assert snapshot(rebuilt) == before


def test_rebuild_in_place_gives_identical_results(deployed, index):
    client = deployed.registrar
    populate(client)
    index.sync(client)
    before = snapshot(index)
    assert index.rebuild(client) == 11
    assert snapshot(index) == before


def test_a_failed_sync_leaves_the_index_as_it_was(deployed, index, monkeypatch):
    client = deployed.registrar
    register(client, RAW)
    index.sync(client)
    before = snapshot(index)
    newer = [RAW2, h(6), h(7)]
    for d in newer:
        register(client, d)
    calls = []
    real_apply = index_module._apply

    def apply_then_crash(conn, event, timestamp):
        calls.append(event)
        if len(calls) == 2:
            raise RuntimeError("power cut")
        real_apply(conn, event, timestamp)

    monkeypatch.setattr(index_module, "_apply", apply_then_crash)
    with pytest.raises(RuntimeError, match="power cut"):
        index.sync(client)
    assert snapshot(index) == before  # neither the first event nor the new last block
    monkeypatch.undo()
    assert index.sync(client) == 3
    assert index.datasets(0, 10)[1] == 4


# -- paging and counts --------------------------------------------------------------------------


def test_paging_is_newest_first_with_totals(deployed, index):
    client = deployed.registrar
    populate(client)
    index.sync(client)
    everything, total = index.datasets()
    assert total == 4
    assert [d.content_hash for d in everything] == [MERGED, CLEAN, RAW2, RAW]
    pages = [index.datasets(offset, 3) for offset in (0, 3, 6)]
    assert [len(page) for page, _ in pages] == [3, 1, 0]
    assert {count for _, count in pages} == {4}
    assert [d for page, _ in pages for d in page] == everything
    assert index.datasets(0, 0) == ([], 4)
    models, count = index.models(offset=1, limit=5)
    assert ([m.model_hash for m in models], count) == ([MODEL1], 2)
    with pytest.raises(ValueError):
        index.datasets(-1, 10)
    with pytest.raises(ValueError):
        index.models(0, -1)


def test_an_empty_index(deployed, index):
    assert index.datasets() == ([], 0)
    assert index.models() == ([], 0)
    assert index.last_block is None
    assert index.sync(deployed.registrar) == 0  # the role events of the deployment are not indexed
    assert index.last_block == deployed.registrar.latest_block()
    assert index.datasets() == ([], 0)


# -- lag ----------------------------------------------------------------------------------------


def test_lag_counts_blocks_not_yet_indexed(deployed, index):
    client = deployed.registrar
    assert index.lag(client) == client.latest_block() - client.deploy_block + 1
    index.sync(client)
    assert index.lag(client) == 0
    register(client, RAW)
    register(client, RAW2)
    assert index.lag(client) == client.latest_block() - index.last_block >= 2
    index.sync(client)
    assert index.lag(client) == 0


# -- binding to one contract on one chain ------------------------------------------------------


def test_an_index_refuses_another_contract_until_rebuilt(deployed, index):
    client = deployed.registrar
    populate(client)
    index.sync(client)
    other, _ = LedgerClient.deploy(deployed.chain.backend, deployed.chain.account())
    register(other, h(77))
    with pytest.raises(IndexMismatch, match="indexes contract") as caught:
        index.sync(other)
    assert caught.value.context["indexed_address"] == client.address
    assert index.dataset(RAW) is not None  # untouched
    assert index.rebuild(other) == 1
    assert index.kind_of(RAW) is None
    assert index.dataset(h(77)) == expected_dataset(other, h(77))
    with pytest.raises(IndexMismatch):
        index.sync(client)


def test_an_index_refuses_a_chain_that_lost_its_last_block(deployed, index, monkeypatch):
    client = deployed.registrar
    register(client, RAW)
    index.sync(client)
    # What a reset dev node or a deep reorganisation looks like: same contract address and
    # chain id, but another block at the height the index last saw.
    monkeypatch.setattr(index_module, "_block_hash", lambda client, number: h(31337))
    with pytest.raises(IndexMismatch, match="reset or reorganised"):
        index.sync(client)
    monkeypatch.undo()
    assert index.sync(client) == 0


# -- threads ------------------------------------------------------------------------------------


def test_queries_from_many_threads_while_syncing(deployed, index):
    client = deployed.registrar
    populate(client)
    index.sync(client)
    for n in range(100, 106):
        register(client, h(n))
    expected_models = index.models(0, 50)
    stop = threading.Event()

    def read(_: int) -> int:
        seen = 0
        while not stop.is_set() or seen == 0:
            page, total = index.datasets(0, 50)
            assert total == len(page) in (4, 10)  # a page and its total come from one snapshot
            assert index.models(0, 50) == expected_models
            assert index.kind_of(RAW) == "dataset"
            seen += 1
        return seen

    with ThreadPoolExecutor(max_workers=4) as pool:
        readers = [pool.submit(read, i) for i in range(4)]
        assert index.sync(client) == 6
        stop.set()
        assert all(r.result() > 0 for r in readers)
    assert index.datasets()[1] == 10


def test_the_file_is_in_wal_mode_with_full_sync(index):
    conn = index._conn()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_block_the_chain_does_not_have_has_no_hash(deployed):
    client = deployed.registrar
    assert index_module._block_hash(client, client.latest_block() + 100) is None
    assert index_module._block_hash(client, -1) is None
    assert index_module._block_hash(client, client.latest_block()) is not None

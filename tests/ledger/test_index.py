"""The event index, on every backend: each query against the client's own event reads, incremental
and chunked syncs, paging, lag, rebuilds that give identical results, and the guards that keep an
index bound to one contract on one chain."""

from __future__ import annotations

import inspect
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from eth_utils import keccak

from ledger.chain.client import LedgerClient
from ledger.index import _rewind as _index_rewind
from ledger.index import _sync as _index_sync
from ledger.index.base import indexed_record
from ledger.index.fsck import fsck
from ledger.index.sqlite import (
    EventIndex,
    IndexedBatch,
    IndexedDataset,
    IndexedModel,
    IndexMismatch,
    LedgerIndex,
    Registration,
    Revocation,
)
from ledger.records import ZERO_HASH, RecordRevoked, hash_hex
from ledger.storage.artifacts import ArtifactStore

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


def _registration(client: LedgerClient, record_hash: str, event) -> Registration:
    return Registration(
        registrant=event.registrant,
        tx_hash=event.tx_hash,
        block_number=event.block_number,
        registered_at=client.get_records([record_hash])[0].registered_at,
        log_index=event.log_index,
    )


def _revocation(client: LedgerClient, record_hash: str) -> Revocation | None:
    revoked: RecordRevoked | None = client.revocation(record_hash)
    if revoked is None:
        return None
    return Revocation(
        reason=revoked.reason,
        revoker=revoked.revoker,
        tx_hash=revoked.tx_hash,
        block_number=revoked.block_number,
        revoked_at=client.block_timestamp(revoked.block_number),
        log_index=revoked.log_index,
    )


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
        registration=_registration(client, content_hash, e),
        revocation=_revocation(client, content_hash),
    )


def expected_model(client: LedgerClient, model_hash: str) -> IndexedModel:
    e = client.model_registration(model_hash)
    return IndexedModel(
        model_hash=e.model_hash,
        datasets=e.datasets,
        metadata_hash=e.metadata_hash,
        registration=_registration(client, model_hash, e),
        revocation=_revocation(client, model_hash),
    )


def expected_batch(client: LedgerClient, root: str) -> IndexedBatch:
    e = client.batch_anchoring(root)
    return IndexedBatch(
        root=e.root,
        model_hash=e.model_hash,
        count=e.count,
        registration=_registration(client, root, e),
        revocation=_revocation(client, root),
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


@pytest.fixture(params=["sqlite", "postgres"])
def index(request: pytest.FixtureRequest, tmp_path: Path):
    """An empty index on each engine: these tests are the index's conformance suite, written
    once and run on the SQLite file and on PostgreSQL (an emptied scratch database)."""
    if request.param == "sqlite":
        with LedgerIndex(tmp_path / "index.sqlite") as opened:
            yield opened
        return
    reorganises = "reorganisation" in request.node.name  # only anvil can: both engines rewind
    if "anvil" in request.node.callspec.params.values() and not reorganises:
        pytest.skip("the engine is what varies: PostgreSQL runs on the embedded chain only")
    from ledger.index.postgres import PostgresIndex

    with PostgresIndex(request.getfixturevalue("empty_pg")) as opened:
        yield opened


sqlite_only = pytest.mark.parametrize("index", ["sqlite"], indirect=True)


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
    raw2 = index.dataset(RAW2)
    assert raw2.revoked and raw2.revocation.reason == "licence withdrawn"
    assert raw2.revocation.revoker == client.account.address
    assert raw2.revocation.block_number > raw2.registration.block_number
    raw = index.dataset(RAW)
    assert not raw.revoked and raw.revocation is None and not raw.derived
    assert raw.registration.registrant == client.account.address
    assert index.dataset(MERGED).parents == (RAW, RAW2) and index.dataset(MERGED).derived
    assert index.model(MODEL2).datasets == (CLEAN, RAW2)
    assert index.batch(BATCH2).revoked and not index.batch(BATCH1).revoked
    # each record answers to its own hash and kind, and names what it was made from
    model1, batch3 = index.model(MODEL1), index.batch(BATCH3)
    assert [(r.kind, r.record_hash) for r in (raw, model1, batch3)] == [
        ("dataset", RAW),
        ("model", MODEL1),
        ("batch", BATCH3),
    ]
    assert batch3.inputs == (MODEL2,) and index.model(MODEL2).inputs == (CLEAN, RAW2)
    assert index.dataset(MERGED).inputs == (RAW, RAW2) and raw.inputs == ()


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
    real_apply = _index_sync.apply_event

    def apply_then_crash(conn, event, timestamp, contract):
        calls.append(event)
        if len(calls) == 2:
            raise RuntimeError("power cut")
        real_apply(conn, event, timestamp, contract)

    monkeypatch.setattr(_index_sync, "apply_event", apply_then_crash)
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
    batches, count = index.batches(offset=0, limit=2)
    assert ([b.root for b in batches], count) == ([BATCH3, BATCH2], 3)
    assert index.batches(0, 0) == ([], 3)


def test_the_revoked_and_what_they_taint_downstream(deployed, index):
    """Revoked: RAW2 and BATCH2. Tainted: what has a revoked record among its inputs at any
    depth (MERGED and MODEL2 are made from RAW2, BATCH3 anchors MODEL2's predictions); a
    revoked record is not tainted by itself, and nothing is downstream of BATCH2."""
    client = deployed.registrar
    populate(client)
    index.sync(client)
    assert index.revoked_and_tainted() == (
        frozenset({RAW2, BATCH2}),
        frozenset({MERGED, MODEL2, BATCH3}),
    )
    client.revoke(RAW, "collected without consent")
    index.sync(client)
    revoked, tainted = index.revoked_and_tainted()
    assert revoked == {RAW, RAW2, BATCH2}
    assert tainted == {CLEAN, MERGED, MODEL1, MODEL2, BATCH1, BATCH2, BATCH3}


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


def test_an_index_rewinds_when_the_chain_lost_its_last_block(deployed, index, monkeypatch):
    client = deployed.registrar
    register(client, RAW)
    index.sync(client)
    rewinds = []
    index.on_rewind = rewinds.append
    # What a reset dev node or a reorganisation past every stored block looks like: same
    # contract address and chain id, another hash at every height. No fork point is left, so
    # the index re-reads everything from the deploy block, by itself.
    monkeypatch.setattr(_index_sync, "block_hash", lambda client, number: h(31337))
    monkeypatch.setattr(_index_rewind, "block_hash", lambda client, number: h(31337))
    assert index.sync(client) == 1
    assert [r.fork_block for r in rewinds] == [client.deploy_block - 1]
    assert rewinds[0].tx_hashes == (expected_dataset(client, RAW).registration.tx_hash,)
    monkeypatch.undo()
    assert index.dataset(RAW) == expected_dataset(client, RAW)
    index.sync(client)  # the real hashes differ from the patched ones: one more rewind
    assert index.sync(client) == 0
    assert len(rewinds) == 2
    assert index.dataset(RAW) == expected_dataset(client, RAW)


@pytest.mark.anvil
def test_an_index_rewinds_a_real_reorganisation_to_its_fork_point(chain, deployed, index):
    if chain.node is None:
        pytest.skip("the embedded chain never reorganises")
    client = deployed.registrar
    register(client, RAW)
    kept = index.sync(client), client.latest_block()
    register(client, RAW2)
    assert index.sync(client) == 1
    orphan = index.dataset(RAW2).registration.tx_hash
    rewinds = []
    index.on_rewind = rewinds.append
    chain.node.rpc("anvil_reorg", 1, [])  # the last block, with RAW2, replaced by an empty one
    assert index.sync(client) == 0
    assert [(r.fork_block, r.tx_hashes) for r in rewinds] == [(kept[1], (orphan,))]
    assert rewinds[0].depth == 1
    assert index.dataset(RAW2) is None
    assert index.dataset(RAW) == expected_dataset(client, RAW)
    assert index.sync(client) == 0 and len(rewinds) == 1  # followed, no more rewinds


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


def _same_storage(index: EventIndex) -> EventIndex:
    """A second index over ``index``'s storage, as another process (a replica) opens it."""
    if isinstance(index, LedgerIndex):
        return LedgerIndex(index.path)
    from ledger.index.postgres import PostgresIndex
    from ledger.storage.postgres import PgConnections

    return PostgresIndex(PgConnections(index._db.url, max_size=2))


def test_two_replicas_syncing_at_once_apply_each_event_once(deployed, index):
    """Two processes' indexes over one storage (two services on one SQLite file, two replicas
    on one database) sync the same events at the same moment: their syncs take turns, the
    later keeps what the earlier applied, and both read the same answers."""
    client = deployed.registrar
    written = populate(client)
    other = _same_storage(index)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            applied = sorted(pool.map(lambda ix: ix.sync(client), [index, other]))
        assert applied == [0, written]
        assert snapshot(other) == snapshot(index)
        assert index.dataset(RAW) == expected_dataset(client, RAW)
    finally:
        other.close()
        if not isinstance(other, LedgerIndex):
            other._db.close()


@sqlite_only
def test_the_file_is_in_wal_mode_with_normal_sync(index):
    # a cache of the chain: a power cut may take its last commits, which the next sync reads
    # again (test_index_receipts.py: an index that lost its last commits)
    conn = index._db.get()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_a_block_the_chain_does_not_have_has_no_hash(deployed):
    client = deployed.registrar
    assert _index_sync.block_hash(client, client.latest_block() + 100) is None
    assert _index_sync.block_hash(client, -1) is None
    assert _index_sync.block_hash(client, client.latest_block()) is not None


# -- the file on disk ---------------------------------------------------------------------------

# The layout of schema version 2, as index files written since REGISTRAR_ROLE changes were
# indexed have it: a change here must bump SCHEMA_VERSION, or old files would be misread.
V2_COLUMNS = {
    "meta": ["key", "value"],
    "records": [
        "hash",
        "kind",
        "registrant",
        "tx_hash",
        "block_number",
        "log_index",
        "registered_at",
    ],
    "datasets": [
        "hash",
        "rows_root",
        "row_count",
        "schema_hash",
        "metadata_hash",
        "transform_hash",
    ],
    "models": ["hash", "metadata_hash"],
    "batches": ["root", "model_hash", "count"],
    "inputs": ["record_hash", "position", "input_hash"],
    "revocations": [
        "hash",
        "revoker",
        "reason",
        "tx_hash",
        "block_number",
        "log_index",
        "revoked_at",
    ],
    "registrar_roles": ["account", "block_number", "log_index", "granted"],
}
# Version 3 adds the generation that logged each event (each generation has its own roles).
V3_COLUMNS = V2_COLUMNS | {
    table: [*V2_COLUMNS[table], "contract"]
    for table in ("records", "revocations", "registrar_roles")
}
# Added to version 2 without a bump, because it only adds: an older build ignores the table, and
# a file without it (or with rows an older build did not add) rewinds to an older fork point.
ADDED_TABLES = {"blocks": ["number", "hash"]}


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


@sqlite_only
def test_the_file_keeps_the_schema_version_3_layout(index):
    assert _index_sync.SCHEMA_VERSION == "3"
    with sqlite3.connect(index.path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == set(V3_COLUMNS) | set(ADDED_TABLES)
        assert {t: _columns(db, t) for t in V3_COLUMNS} == V3_COLUMNS
        assert {t: _columns(db, t) for t in ADDED_TABLES} == ADDED_TABLES
        assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("3",)


def _reorder_columns(path: Path) -> None:
    """Rewrite every data table with its columns in reverse order, keeping the rows: a file
    that holds the same data under another column order (as a hand-migrated one might)."""
    with sqlite3.connect(path) as db:
        for table in V3_COLUMNS:
            if table == "meta":
                continue
            columns = list(reversed(_columns(db, table)))
            keys = [row[1] for row in db.execute(f"PRAGMA table_info({table})") if row[5]]
            names = ", ".join(columns)
            db.execute(f"CREATE TABLE new_{table} ({names}, PRIMARY KEY ({', '.join(keys)}))")
            db.execute(f"INSERT INTO new_{table} ({names}) SELECT {names} FROM {table}")
            db.execute(f"DROP TABLE {table}")
            db.execute(f"ALTER TABLE new_{table} RENAME TO {table}")


def test_rows_are_read_and_written_by_column_name(deployed, tmp_path):
    client = deployed.registrar
    populate(client)
    path = tmp_path / "index.sqlite"
    with LedgerIndex(path) as first:
        first.sync(client)
        before = snapshot(first)
    _reorder_columns(path)
    with sqlite3.connect(path) as db:
        assert _columns(db, "records")[0] == "contract"  # really reordered
    with LedgerIndex(path) as reordered:
        assert snapshot(reordered) == before
        register(client, h(5), parents=[CLEAN], transform=h(52))
        client.revoke(MODEL2, "superseded")
        assert reordered.sync(client) == 2
        assert reordered.dataset(h(5)) == expected_dataset(client, h(5))
        assert reordered.model(MODEL2) == expected_model(client, MODEL2)


def test_a_file_of_another_schema_version_is_read_again_from_the_chain(deployed, tmp_path):
    client = deployed.registrar
    populate(client)
    path = tmp_path / "index.sqlite"
    with LedgerIndex(path) as first:
        first.sync(client)
        before = snapshot(first)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    with LedgerIndex(path) as again:
        assert again.last_block is None and again.datasets() == ([], 0)  # dropped, not misread
        assert again.sync(client) == 11
        assert snapshot(again) == before


@sqlite_only  # it alters the file behind the index's back
def test_fsck_names_each_altered_field_of_an_indexed_record(deployed, index, tmp_path):
    client = deployed.registrar
    populate(client)
    index.sync(client)
    store = ArtifactStore(tmp_path / "artifacts")  # empty: every file is missing, not our topic

    def mismatches() -> list[tuple[str, str | None, str | None]]:
        found = fsck(store, index, client)
        return sorted((f.subject, f.expected, f.found) for f in found if f.kind == "index-mismatch")

    assert mismatches() == []
    raw_block = index.dataset(RAW).registration.block_number
    revocation = index.batch(BATCH2).revocation
    with sqlite3.connect(index.path) as db:
        db.execute("UPDATE records SET block_number = 1 WHERE hash = ?", (RAW,))
        db.execute("UPDATE revocations SET reason = 'forged' WHERE hash = ?", (RAW2,))
        db.execute("DELETE FROM revocations WHERE hash = ?", (BATCH2,))
        db.execute("UPDATE batches SET count = '8' WHERE root = ?", (BATCH1,))
    assert mismatches() == sorted(
        [
            (f"{RAW}.registration.block_number", str(raw_block), "1"),
            (f"{RAW2}.revocation.reason", "licence withdrawn", "forged"),
            (f"{BATCH2}.revocation", str(revocation), "None"),
            (f"{BATCH1}.count", "5", "8"),
        ]
    )


# -- the interface ------------------------------------------------------------------------------


def test_ledger_index_implements_the_event_index_interface(index):
    typed: EventIndex = index  # what a type checker holds the flows to
    assert isinstance(typed, EventIndex)  # runtime_checkable: every member is there
    protocol_members = {
        name
        for name, value in vars(EventIndex).items()
        if not name.startswith("_") and (callable(value) or isinstance(value, property))
    }
    assert protocol_members == {
        "sync",
        "rebuild",
        "index_block",
        "last_block",
        "holds",
        "change_token",
        "kind_of",
        "dataset",
        "model",
        "batch",
        "datasets",
        "models",
        "batches",
        "revoked_and_tainted",
        "batches_of_model",
        "children_of_dataset",
        "models_of_dataset",
        "block_of",
        "registrar_changes",
        "close",
    }
    for name in protocol_members - {"last_block"}:  # the same parameters, names and defaults
        expected = inspect.signature(getattr(EventIndex, name))
        assert inspect.signature(getattr(LedgerIndex, name)) == expected, name
    assert isinstance(LedgerIndex.last_block, property)


def test_one_lookup_by_kind_and_hash(deployed, index):
    """``indexed_record(index, kind, hash)``: the record whatever its kind with None, only of
    ``kind`` otherwise, None for a hash the index does not hold."""
    populate(deployed.registrar)
    index.sync(deployed.registrar)
    for kind, record_hash, lookup in (
        ("dataset", RAW, index.dataset),
        ("model", MODEL1, index.model),
        ("batch", BATCH1, index.batch),
    ):
        assert indexed_record(index, None, record_hash) == indexed_record(index, kind, record_hash)
        assert indexed_record(index, kind, record_hash) == lookup(record_hash) is not None
    assert (
        indexed_record(index, "model", RAW) is None
        and indexed_record(index, "dataset", BATCH1) is None
    )
    assert indexed_record(index, None, h(999)) is None

"""The event index: a SQLite cache of the contract's events, for queries the chain cannot answer
quickly (listings, paging, "which models were trained on this dataset?").

The chain stays the source of truth. Every row here is derived from a decoded event plus the
timestamp of the event's block, so the file can be deleted and rebuilt at any time and gives
identical query results. Each :meth:`LedgerIndex.sync` is one SQLite transaction: a crash leaves
the index as it was before the sync or as it is after, never half-applied.

An index is bound to one contract on one chain: the first sync records the contract address, the
chain id and the hash of the last block it indexed. A later sync through a client for another
contract or chain raises :class:`IndexMismatch` rather than silently rebuilding, because that
almost always means a data directory pointed at the wrong node, which an operator should see.
The same error is raised when the chain no longer holds the block the index last saw (a reset
dev node, a reorganisation deeper than the backend's confirmations). :meth:`LedgerIndex.rebuild`
is the explicit way to accept the new chain.

Table layout (values are 0x-lowercase-hex hashes unless said otherwise):

- ``meta(key, value)``: schema version, chain id, contract address, last indexed block + hash.
- ``records(hash, kind, registrant, tx_hash, block_number, log_index, registered_at)``: one row
  per registered dataset, model or batch.
- ``datasets(hash, rows_root, row_count, schema_hash, metadata_hash, transform_hash)``,
  ``models(hash, metadata_hash)``, ``batches(root, model_hash, count)``: per-kind fields.
- ``inputs(record_hash, position, input_hash)``: a derived dataset's parents, a model's training
  datasets, in the order the event listed them.
- ``revocations(hash, revoker, reason, tx_hash, block_number, log_index, revoked_at)``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from web3.exceptions import BlockNotFound

from ledger._transactor import guard
from ledger.client import REGISTRAR_ROLE, LedgerClient
from ledger.errors import LedgerError
from ledger.records import (
    DatasetRegistered,
    LedgerEvent,
    ModelRegistered,
    PredictionsAnchored,
    RecordRevoked,
    RoleChanged,
    hash_hex,
)

__all__ = [
    "DEFAULT_CHUNK_BLOCKS",
    "IndexMismatch",
    "IndexedBatch",
    "IndexedDataset",
    "IndexedModel",
    "LedgerIndex",
    "RecordKindName",
]

DEFAULT_CHUNK_BLOCKS = 2_000  # blocks per eth_getLogs: public nodes cap the range or the result
SCHEMA_VERSION = "2"  # 2: REGISTRAR_ROLE changes, so verification need not scan for them

RecordKindName = Literal["dataset", "model", "batch"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('dataset', 'model', 'batch')),
    registrant TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    registered_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_kind ON records (kind, block_number, log_index);
CREATE TABLE IF NOT EXISTS datasets (
    hash TEXT PRIMARY KEY REFERENCES records (hash),
    rows_root TEXT NOT NULL,
    row_count TEXT NOT NULL,  -- a uint64 in decimal: SQLite integers stop at 2**63 - 1
    schema_hash TEXT NOT NULL,
    metadata_hash TEXT NOT NULL,
    transform_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS models (
    hash TEXT PRIMARY KEY REFERENCES records (hash),
    metadata_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    root TEXT PRIMARY KEY REFERENCES records (hash),
    model_hash TEXT NOT NULL,
    count TEXT NOT NULL  -- a uint64 in decimal, as row_count
);
CREATE INDEX IF NOT EXISTS batches_by_model ON batches (model_hash);
CREATE TABLE IF NOT EXISTS inputs (
    record_hash TEXT NOT NULL REFERENCES records (hash),
    position INTEGER NOT NULL,
    input_hash TEXT NOT NULL,
    PRIMARY KEY (record_hash, position)
);
CREATE INDEX IF NOT EXISTS inputs_by_input ON inputs (input_hash);
CREATE TABLE IF NOT EXISTS revocations (
    hash TEXT PRIMARY KEY,
    revoker TEXT NOT NULL,
    reason TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS registrar_roles (
    account TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    granted INTEGER NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX IF NOT EXISTS registrar_roles_account ON registrar_roles (account);
"""
_TABLES = (
    "meta",
    "records",
    "datasets",
    "models",
    "batches",
    "inputs",
    "revocations",
    "registrar_roles",
)
_DATA_TABLES = (
    "registrar_roles",
    "datasets",
    "models",
    "batches",
    "inputs",
    "revocations",
    "records",
)  # children first


class IndexMismatch(LedgerError):
    """The index holds another contract's or another chain's events, or the chain it indexed no
    longer has the block the index last saw."""

    hint = "rebuild the index from the chain you mean (LedgerIndex.rebuild), or fix the node URL"


@dataclass(frozen=True)
class IndexedDataset:
    """A registered dataset, with its registration event's fields and its revocation, if any."""

    content_hash: str
    rows_root: str
    row_count: int
    schema_hash: str
    metadata_hash: str
    parents: tuple[str, ...]
    transform_hash: str
    registrant: str
    tx_hash: str
    block_number: int
    registered_at: int
    revoked: bool
    revoked_reason: str | None
    revoked_by: str | None
    revoked_tx_hash: str | None
    revoked_block: int | None
    revoked_at: int | None

    @property
    def record_hash(self) -> str:
        return self.content_hash

    @property
    def derived(self) -> bool:
        """Whether it was derived (cleaned) from parent datasets rather than collected raw."""
        return bool(self.parents)


@dataclass(frozen=True)
class IndexedModel:
    """A registered model, with its training datasets and its revocation, if any."""

    model_hash: str
    datasets: tuple[str, ...]
    metadata_hash: str
    registrant: str
    tx_hash: str
    block_number: int
    registered_at: int
    revoked: bool
    revoked_reason: str | None
    revoked_by: str | None
    revoked_tx_hash: str | None
    revoked_block: int | None
    revoked_at: int | None

    @property
    def record_hash(self) -> str:
        return self.model_hash


@dataclass(frozen=True)
class IndexedBatch:
    """An anchored prediction batch (its id is its Merkle root) and its revocation, if any."""

    root: str
    model_hash: str
    count: int
    registrant: str
    tx_hash: str
    block_number: int
    registered_at: int
    revoked: bool
    revoked_reason: str | None
    revoked_by: str | None
    revoked_tx_hash: str | None
    revoked_block: int | None
    revoked_at: int | None

    @property
    def record_hash(self) -> str:
        return self.root


@dataclass(frozen=True)
class _Binding:
    """What an index file says it indexes, read from ``meta``."""

    address: str | None
    chain_id: int | None
    last_block: int | None
    last_block_hash: str | None


_REVOCATION_COLUMNS = (
    "v.hash IS NOT NULL, v.reason, v.revoker, v.tx_hash, v.block_number, v.revoked_at"
)
_RECORD_COLUMNS = "r.registrant, r.tx_hash, r.block_number, r.registered_at"
_DATASET_SELECT = f"""
SELECT r.hash, d.rows_root, d.row_count, d.schema_hash, d.metadata_hash, d.transform_hash,
       {_RECORD_COLUMNS}, {_REVOCATION_COLUMNS}
FROM records r JOIN datasets d ON d.hash = r.hash LEFT JOIN revocations v ON v.hash = r.hash
"""
_MODEL_SELECT = f"""
SELECT r.hash, m.metadata_hash, {_RECORD_COLUMNS}, {_REVOCATION_COLUMNS}
FROM records r JOIN models m ON m.hash = r.hash LEFT JOIN revocations v ON v.hash = r.hash
"""
_BATCH_SELECT = f"""
SELECT r.hash, b.model_hash, b.count, {_RECORD_COLUMNS}, {_REVOCATION_COLUMNS}
FROM records r JOIN batches b ON b.root = r.hash LEFT JOIN revocations v ON v.hash = r.hash
"""
_NEWEST_FIRST = "ORDER BY r.block_number DESC, r.log_index DESC"


class LedgerIndex:
    """A SQLite cache of one ProvenanceLedger contract's events.

    Safe to share between threads: each thread gets its own connection (WAL mode lets readers
    run while a sync writes), and syncs are serialised by a lock within the process and by
    SQLite's write lock across processes.
    """

    def __init__(self, path: Path, *, chunk_blocks: int = DEFAULT_CHUNK_BLOCKS) -> None:
        if chunk_blocks < 1:
            raise ValueError("chunk_blocks must be 1 or more")
        self.path = Path(path)
        self.chunk_blocks = chunk_blocks
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._closed = False
        self._create_schema()

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close every thread's connection. Idempotent."""
        with self._connections_lock:
            self._closed = True
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    def __enter__(self) -> LedgerIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------

    def sync(self, client: LedgerClient) -> int:
        """Apply every event after the last indexed block up to the chain's final head.

        The final head is the latest block minus the backend's confirmations (0 on dev chains),
        the same depth the client waits for before it calls a write done, so the index never
        holds a block that could still be reorganised away. Returns how many record events
        (registrations and revocations) were applied; ``REGISTRAR_ROLE`` changes are indexed
        too (for verification), but not counted.
        """
        with self._sync_lock:
            return self._sync(client, reset=False)

    def rebuild(self, client: LedgerClient) -> int:
        """Drop everything and index ``client``'s contract from its deploy block.

        The drop and the re-indexing are one transaction, so a crash half-way leaves the old
        index in place. This is also how an index is re-pointed at another contract or chain.
        """
        with self._sync_lock:
            return self._sync(client, reset=True)

    def lag(self, client: LedgerClient) -> int:
        """How many blocks the index is behind the final head :meth:`sync` would reach."""
        head = _final_head(client)
        last = self._binding(self._conn()).last_block
        if last is None:
            return max(0, head - client.deploy_block + 1)
        return max(0, head - last)

    @property
    def last_block(self) -> int | None:
        """The last block indexed, or None before the first sync (read from the file, so it
        reflects syncs made by other threads and processes)."""
        return self._binding(self._conn()).last_block

    # -- queries ------------------------------------------------------------------------------

    def kind_of(self, record_hash: bytes | str) -> RecordKindName | None:
        """What a hash is registered as, or None if the index has no record of it."""
        row = (
            self._conn()
            .execute("SELECT kind FROM records WHERE hash = ?", (hash_hex(record_hash),))
            .fetchone()
        )
        return None if row is None else row[0]

    def block_of(self, event_name: str, record_hash: str) -> int | None:
        """The block of a record's registration (or revocation) event: a hint that lets the
        client read that event from the chain without scanning every block (``BlockHints``)."""
        conn = self._conn()
        if event_name == "RecordRevoked":
            row = conn.execute(
                "SELECT block_number FROM revocations WHERE hash = ?", (record_hash,)
            ).fetchone()
        else:
            row = conn.execute(
                "SELECT block_number FROM records WHERE hash = ?", (record_hash,)
            ).fetchone()
        return None if row is None else row[0]

    def registrar_changes(self, account: str) -> tuple[list[tuple[int, int, bool]], int | None]:
        """``account``'s REGISTRAR_ROLE changes as ``(block, log_index, granted)``, and the last
        block the index covers (the client's ``RoleHistory``)."""
        conn = self._conn()
        rows = conn.execute(
            "SELECT block_number, log_index, granted FROM registrar_roles WHERE account = ? "
            "ORDER BY block_number, log_index",
            (account,),
        ).fetchall()
        return [(b, i, bool(g)) for b, i, g in rows], self.last_block

    def dataset(self, content_hash: bytes | str) -> IndexedDataset | None:
        """The dataset registered under ``content_hash``, or None."""
        found = self._datasets(f"{_DATASET_SELECT} WHERE r.hash = ?", (hash_hex(content_hash),))
        return found[0] if found else None

    def model(self, model_hash: bytes | str) -> IndexedModel | None:
        """The model registered under ``model_hash``, or None."""
        found = self._models(f"{_MODEL_SELECT} WHERE r.hash = ?", (hash_hex(model_hash),))
        return found[0] if found else None

    def batch(self, root: bytes | str) -> IndexedBatch | None:
        """The prediction batch anchored under ``root``, or None."""
        found = self._batches(f"{_BATCH_SELECT} WHERE r.hash = ?", (hash_hex(root),))
        return found[0] if found else None

    def datasets(self, offset: int = 0, limit: int = 50) -> tuple[list[IndexedDataset], int]:
        """One page of datasets, newest first, and the total number of datasets."""
        _check_page(offset, limit)
        with self._read() as conn:
            total = _count(conn, "dataset")
            page = self._datasets(
                f"{_DATASET_SELECT} {_NEWEST_FIRST} LIMIT ? OFFSET ?", (limit, offset)
            )
        return page, total

    def models(self, offset: int = 0, limit: int = 50) -> tuple[list[IndexedModel], int]:
        """One page of models, newest first, and the total number of models."""
        _check_page(offset, limit)
        with self._read() as conn:
            total = _count(conn, "model")
            page = self._models(
                f"{_MODEL_SELECT} {_NEWEST_FIRST} LIMIT ? OFFSET ?", (limit, offset)
            )
        return page, total

    def batches_of_model(self, model_hash: bytes | str) -> list[IndexedBatch]:
        """Every batch of predictions anchored for a model, newest first."""
        query = f"{_BATCH_SELECT} WHERE b.model_hash = ? {_NEWEST_FIRST}"
        return self._batches(query, (hash_hex(model_hash),))

    def children_of_dataset(self, content_hash: bytes | str) -> list[IndexedDataset]:
        """The datasets derived from this one (it is among their parents), newest first."""
        query = (
            f"{_DATASET_SELECT} WHERE r.hash IN "
            f"(SELECT record_hash FROM inputs WHERE input_hash = ?) {_NEWEST_FIRST}"
        )
        return self._datasets(query, (hash_hex(content_hash),))

    def models_of_dataset(self, content_hash: bytes | str) -> list[IndexedModel]:
        """The models trained on this dataset, newest first."""
        query = (
            f"{_MODEL_SELECT} WHERE r.hash IN "
            f"(SELECT record_hash FROM inputs WHERE input_hash = ?) {_NEWEST_FIRST}"
        )
        return self._models(query, (hash_hex(content_hash),))

    # -- connections --------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with self._connections_lock:
                if self._closed:
                    raise RuntimeError("this LedgerIndex is closed")
                # Autocommit mode: every transaction below is opened explicitly, so it is
                # visible in the code where one begins and ends.
                conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=30.0
                )
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA foreign_keys = ON")
                self._connections.append(conn)
            self._local.conn = conn
        return conn

    def _create_schema(self) -> None:
        conn = self._conn()
        conn.execute("PRAGMA journal_mode = WAL")
        with self._write(conn):
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            version = None
            if "meta" in tables:
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                version = row and row[0]
            if version not in (None, SCHEMA_VERSION) or (version is None and "records" in tables):
                # An index written by another schema version: it is only a cache, so start
                # over; the next sync re-reads everything from the chain.
                for table in reversed(_TABLES):
                    conn.execute(f"DROP TABLE IF EXISTS {table}")
            # executescript() would commit the transaction: run the statements one by one.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,)
            )

    @contextmanager
    def _write(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One snapshot for a query made of several statements (a page, its inputs, its total),
        so a sync committing in between cannot make them disagree."""
        conn = self._conn()
        if conn.in_transaction:  # nested in an outer read: share its snapshot
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    # -- sync internals -----------------------------------------------------------------------

    def _binding(self, conn: sqlite3.Connection) -> _Binding:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        return _Binding(
            address=meta.get("address"),
            chain_id=int(meta["chain_id"]) if "chain_id" in meta else None,
            last_block=int(meta["last_block"]) if "last_block" in meta else None,
            last_block_hash=meta.get("last_block_hash"),
        )

    def _check_binding(self, binding: _Binding, client: LedgerClient, chain_id: int) -> None:
        if binding.address is None:
            return
        if binding.address.lower() != client.address.lower() or binding.chain_id != chain_id:
            raise IndexMismatch(
                f"{self.path} indexes contract {binding.address} on chain {binding.chain_id}, "
                f"not {client.address} on chain {chain_id}",
                path=str(self.path),
                indexed_address=binding.address,
                indexed_chain_id=binding.chain_id,
                address=client.address,
                chain_id=chain_id,
            )
        if binding.last_block is None:
            return
        found = _block_hash(client, binding.last_block)
        if found != binding.last_block_hash:
            raise IndexMismatch(
                f"{self.path} indexed block {binding.last_block} as {binding.last_block_hash}, "
                f"but the chain now has {found or 'no such block'} there: the chain was reset "
                "or reorganised",
                path=str(self.path),
                block_number=binding.last_block,
                indexed_block_hash=binding.last_block_hash,
                chain_block_hash=found,
            )

    def _sync(self, client: LedgerClient, *, reset: bool) -> int:
        # 1. Where to start: after the last indexed block of this very chain and contract.
        conn = self._conn()
        chain_id = client.chain_id()
        before = self._binding(conn)
        if not reset:
            self._check_binding(before, client, chain_id)
        fresh = reset or before.last_block is None
        start = client.deploy_block if fresh else before.last_block + 1  # type: ignore[operator]
        # 2. Read the events and their blocks' timestamps from the chain, outside any SQLite
        #    transaction, in chunks a real node accepts.
        head = _final_head(client)
        events = _record_events(client, start, head, self.chunk_blocks)
        timestamps: dict[int, int] = {}
        for event in events:
            if event.block_number not in timestamps:
                timestamps[event.block_number] = client.block_timestamp(event.block_number)
        head_hash = _block_hash(client, head) if head >= start else before.last_block_hash
        # 3. Apply them in one transaction.
        with self._write(conn):
            if reset:
                for table in _DATA_TABLES:
                    conn.execute(f"DELETE FROM {table}")
                conn.execute("DELETE FROM meta WHERE key != 'schema'")
                floor = start - 1
            else:
                now = self._binding(conn)
                if now != before:  # another process synced meanwhile: keep what it applied
                    self._check_binding(now, client, chain_id)
                floor = start - 1 if now.last_block is None else now.last_block
            applied = 0
            for event in events:
                if event.block_number > floor:
                    _apply(conn, event, timestamps[event.block_number])
                    applied += not isinstance(event, RoleChanged)
            if head > floor:
                _set_meta(
                    conn,
                    address=client.address,
                    chain_id=str(chain_id),
                    deploy_block=str(client.deploy_block),
                    last_block=str(head),
                    last_block_hash=head_hash,
                )
            elif reset or before.address is None:
                _set_meta(conn, address=client.address, chain_id=str(chain_id))
        return applied

    # -- row decoding -------------------------------------------------------------------------

    def _inputs(self, conn: sqlite3.Connection, hashes: Sequence[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {h: [] for h in hashes}
        for start in range(0, len(hashes), 500):  # stay under SQLite's bound-parameter limit
            chunk = hashes[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                "SELECT record_hash, input_hash FROM inputs "
                f"WHERE record_hash IN ({marks}) ORDER BY record_hash, position",
                tuple(chunk),
            )
            for record_hash, input_hash in rows:
                found[record_hash].append(input_hash)
        return found

    def _datasets(self, query: str, params: tuple[Any, ...]) -> list[IndexedDataset]:
        with self._read() as c:
            rows = c.execute(query, params).fetchall()
            parents = self._inputs(c, [row[0] for row in rows])
        return [
            IndexedDataset(
                content_hash=row[0],
                rows_root=row[1],
                row_count=int(row[2]),
                schema_hash=row[3],
                metadata_hash=row[4],
                parents=tuple(parents[row[0]]),
                transform_hash=row[5],
                **_tail(row[6:]),
            )
            for row in rows
        ]

    def _models(self, query: str, params: tuple[Any, ...]) -> list[IndexedModel]:
        with self._read() as c:
            rows = c.execute(query, params).fetchall()
            datasets = self._inputs(c, [row[0] for row in rows])
        return [
            IndexedModel(
                model_hash=row[0],
                datasets=tuple(datasets[row[0]]),
                metadata_hash=row[1],
                **_tail(row[2:]),
            )
            for row in rows
        ]

    def _batches(self, query: str, params: tuple[Any, ...]) -> list[IndexedBatch]:
        rows = self._conn().execute(query, params).fetchall()
        return [
            IndexedBatch(root=row[0], model_hash=row[1], count=int(row[2]), **_tail(row[3:]))
            for row in rows
        ]


# -- helpers ----------------------------------------------------------------------------------


def _tail(row: Sequence[Any]) -> dict[str, Any]:
    """The fields every indexed record shares: registration, then revocation."""
    registrant, tx_hash, block_number, registered_at, revoked, reason, by, rtx, rblock, rat = row
    return {
        "registrant": registrant,
        "tx_hash": tx_hash,
        "block_number": block_number,
        "registered_at": registered_at,
        "revoked": bool(revoked),
        "revoked_reason": reason,
        "revoked_by": by,
        "revoked_tx_hash": rtx,
        "revoked_block": rblock,
        "revoked_at": rat,
    }


def _check_page(offset: int, limit: int) -> None:
    if offset < 0 or limit < 0:
        raise ValueError(f"offset and limit must be 0 or more, got {offset} and {limit}")


def _count(conn: sqlite3.Connection, kind: str) -> int:
    return conn.execute("SELECT COUNT(*) FROM records WHERE kind = ?", (kind,)).fetchone()[0]


def _set_meta(conn: sqlite3.Connection, **values: str | None) -> None:
    for key, value in values.items():
        if value is not None:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def _final_head(client: LedgerClient) -> int:
    """The newest block that counts as final for this client's backend."""
    return client.latest_block() - client.backend.confirmations


def _block_hash(client: LedgerClient, number: int) -> str | None:
    """The hash of block ``number`` on the client's chain, or None if the chain is shorter."""
    if number < 0:
        return None
    try:
        block = guard(lambda: client.backend.w3.eth.get_block(number))
    except BlockNotFound:  # a node that was reset holds fewer blocks than the index saw
        return None
    return None if block is None else hash_hex(bytes(block["hash"]))


_RecordEvent = (
    DatasetRegistered | ModelRegistered | PredictionsAnchored | RecordRevoked | RoleChanged
)
_RECORD_EVENTS = (
    DatasetRegistered,
    ModelRegistered,
    PredictionsAnchored,
    RecordRevoked,
    RoleChanged,
)
_REGISTRAR_ROLE = hash_hex(REGISTRAR_ROLE)


def _record_events(
    client: LedgerClient, start: int, head: int, chunk_blocks: int
) -> list[_RecordEvent]:
    """The record events of blocks ``start..head``, in chain order, fetched in chunks."""
    found: list[_RecordEvent] = []
    for low in range(start, head + 1, chunk_blocks):
        high = min(head, low + chunk_blocks - 1)
        events: list[LedgerEvent] = client.events(low, high)
        found.extend(e for e in events if isinstance(e, _RECORD_EVENTS))
    return found


def _apply(conn: sqlite3.Connection, event: _RecordEvent, timestamp: int) -> None:
    """Write one event. Plain INSERTs: an event applied twice is a bug, and fails loudly."""
    where = (event.tx_hash, event.block_number, event.log_index, timestamp)
    if isinstance(event, RoleChanged):
        if event.role == _REGISTRAR_ROLE:
            conn.execute(
                "INSERT INTO registrar_roles VALUES (?, ?, ?, ?)",
                (event.account, event.block_number, event.log_index, int(event.granted)),
            )
        return
    if isinstance(event, RecordRevoked):
        conn.execute(
            "INSERT INTO revocations VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event.record_hash, event.revoker, event.reason, *where),
        )
        return
    if isinstance(event, DatasetRegistered):
        record_hash, kind, inputs = event.content_hash, "dataset", event.parents
    elif isinstance(event, ModelRegistered):
        record_hash, kind, inputs = event.model_hash, "model", event.datasets
    else:
        record_hash, kind, inputs = event.root, "batch", ()
    conn.execute(
        "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)",
        (record_hash, kind, event.registrant, *where),
    )
    if isinstance(event, DatasetRegistered):
        conn.execute(
            "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?)",
            (
                record_hash,
                event.rows_root,
                str(event.row_count),
                event.schema_hash,
                event.metadata_hash,
                event.transform_hash,
            ),
        )
    elif isinstance(event, ModelRegistered):
        conn.execute("INSERT INTO models VALUES (?, ?)", (record_hash, event.metadata_hash))
    else:
        conn.execute(
            "INSERT INTO batches VALUES (?, ?, ?)",
            (record_hash, event.model_hash, str(event.count)),
        )
    conn.executemany(
        "INSERT INTO inputs VALUES (?, ?, ?)",
        [(record_hash, position, input_hash) for position, input_hash in enumerate(inputs)],
    )

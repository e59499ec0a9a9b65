"""The event index's queries, written once for every SQL engine: :class:`SqlIndex` runs them
over any :class:`Transactions` (SQLite's per-thread connections, PostgreSQL's pool) and decodes
their rows (by column name) into :mod:`ledger.index.base` records.

The queries keep to the SQL both engines speak (``?`` placeholders, ``WITH RECURSIVE``,
``LIMIT``/``OFFSET``, ``ON CONFLICT``); the tables, the binding to one contract on one chain, and
the application of events are in :mod:`ledger.index._sync`. Each engine's module
(:mod:`ledger.index.sqlite`, :mod:`ledger.index.postgres`) only opens its connections.

It runs past 400 lines because the interface is one class whose queries share their column
lists and decoding; splitting them by record kind would spread one row format over files.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ledger.chain.client import LedgerClient
from ledger.index import _receipts, _sync
from ledger.index.base import (
    IndexedBatch,
    IndexedDataset,
    IndexedModel,
    RecordKindName,
    Registration,
    Revocation,
)
from ledger.records import hash_hex

__all__ = ["DEFAULT_CHUNK_BLOCKS", "SqlIndex", "Transactions"]

DEFAULT_CHUNK_BLOCKS = 2_000  # blocks per eth_getLogs: public nodes cap the range or the result
# seconds a block this process wrote waits for a sync in progress before leaving itself to it
INDEX_BLOCK_WAIT = 0.25

# Every column a record query returns, named once: rows are read by these names.
_REGISTRATION_COLUMNS = """
    r.hash AS hash, r.registrant AS registrant, r.tx_hash AS tx_hash,
    r.block_number AS block_number, r.log_index AS log_index, r.registered_at AS registered_at,
    v.hash AS revoked_hash, v.reason AS revoked_reason, v.revoker AS revoker,
    v.tx_hash AS revoked_tx_hash, v.block_number AS revoked_block,
    v.log_index AS revoked_log_index, v.revoked_at AS revoked_at"""
_DATASET_SELECT = f"""
SELECT {_REGISTRATION_COLUMNS}, d.rows_root AS rows_root, d.row_count AS row_count,
       d.schema_hash AS schema_hash, d.metadata_hash AS metadata_hash,
       d.transform_hash AS transform_hash
FROM records r JOIN datasets d ON d.hash = r.hash LEFT JOIN revocations v ON v.hash = r.hash
"""
_MODEL_SELECT = f"""
SELECT {_REGISTRATION_COLUMNS}, m.metadata_hash AS metadata_hash
FROM records r JOIN models m ON m.hash = r.hash LEFT JOIN revocations v ON v.hash = r.hash
"""
_BATCH_SELECT = f"""
SELECT {_REGISTRATION_COLUMNS}, b.model_hash AS model_hash, b.count AS count
FROM records r JOIN batches b ON b.root = r.hash LEFT JOIN revocations v ON v.hash = r.hash
"""
_NEWEST_FIRST = "ORDER BY r.block_number DESC, r.log_index DESC"
# Every record downstream of a revoked one: the edges are the inputs (parents, training data)
# and each batch's model; UNION (not UNION ALL) ends the walk on a record already reached.
_TAINTED = """
WITH RECURSIVE edges(parent, child) AS (
    SELECT input_hash, record_hash FROM inputs
    UNION ALL SELECT model_hash, root FROM batches
), down(h) AS (
    SELECT e.child FROM edges e JOIN revocations v ON v.hash = e.parent
    UNION SELECT e.child FROM edges e JOIN down ON e.parent = down.h
)
SELECT h FROM down
"""
_MAX_PARAMETERS = 500  # per IN (...) list: stay under SQLite's bound-parameter limit


class Transactions(Protocol):
    """What the index needs of an engine's connections: snapshots to read in, a single
    statement's rows (``query``: on a server, one round trip), transactions to write in
    (``lock``: an engine that serves several processes makes them take turns on it;
    ``write_if``: statements known beforehand, applied if a condition holds, on a server in
    one round trip), a name for messages, and a way to let go."""

    path: Any

    def read(self) -> AbstractContextManager[Any]: ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    def write(
        self, conn: Any = None, *, lock: int | None = None
    ) -> AbstractContextManager[Any]: ...

    def write_if(
        self,
        condition: tuple[str, Sequence[Any]],
        statements: Sequence[tuple[str, Sequence[Any]]],
        *,
        lock: int | None = None,
    ) -> bool: ...

    def close(self) -> None: ...


class SqlIndex:
    """A cache of one ProvenanceLedger contract's events in a SQL database (an
    :class:`EventIndex`), over the engine's :class:`Transactions`.

    Safe to share between threads; syncs are serialised by a lock within the process and by the
    engine's write lock (SQLite's, or a PostgreSQL advisory lock) across processes.
    """

    def __init__(self, db: Transactions, *, chunk_blocks: int = DEFAULT_CHUNK_BLOCKS) -> None:
        if chunk_blocks < 1:
            raise ValueError("chunk_blocks must be 1 or more")
        self.chunk_blocks = chunk_blocks
        self._db = db
        self._sync_lock = threading.Lock()
        # the block this process last indexed from its receipts, until a sync (which may
        # rewind the head): what :meth:`holds` answers without a read
        self._indexed_here: int | None = None
        # told of every rewind (blocks that left the canonical chain) before it is committed
        self.on_rewind: Callable[[_sync.Rewind], None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close every thread's connection. Idempotent."""
        self._db.close()

    def __enter__(self) -> SqlIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def change_token(self) -> Any | None:
        """None: the engine cannot say cheaply whether anything changed (see EventIndex)."""
        return None

    # -- writing ------------------------------------------------------------------------------

    def sync(self, client: LedgerClient) -> int:
        """Apply every event after the last indexed block up to the chain's final head.

        The final head is the latest block minus the backend's confirmations (0 on dev chains),
        the same depth the client waits for before it calls a write done, so the index never
        holds a block that could still be reorganised away. Returns how many record events
        (registrations and revocations) were applied; ``REGISTRAR_ROLE`` changes are indexed
        too (for verification), but not counted. Raises :class:`IndexMismatch` if the index
        belongs to another contract or chain. If the chain lost blocks the index held (a
        reorganisation deeper than the confirmations), they are rewound and read again, and
        :attr:`on_rewind` is told.
        """
        with self._sync_lock:
            self._indexed_here = None
            return _sync.sync(
                self._db,
                client,
                chunk_blocks=self.chunk_blocks,
                reset=False,
                on_rewind=self.on_rewind,
            )

    def index_block(self, client: LedgerClient, block: Any, receipts: Sequence[Any]) -> bool:
        """Index a block this process just wrote from its receipts, if it directly extends the
        indexed head (:mod:`ledger.index._receipts` says when, and why the sync still confirms
        it); False when it did not, and the next sync reads the block from the chain.

        A sync in progress is waited for, briefly (:data:`INDEX_BLOCK_WAIT`): it usually
        ends before the block would be read again, and skipping the block made the requests
        answered from it sync each (reading the chain), whose syncs made the next block skip
        in turn (issue 22: a replica under 16 clients left 40% of its blocks to the sync). A
        sync that takes longer (catching up many blocks) is not waited for: it, or the next,
        reads the block anyway."""
        if not self._sync_lock.acquire(timeout=INDEX_BLOCK_WAIT):
            return False
        try:
            indexed = _receipts.index_block(self._db, client, block, receipts)
            if indexed:
                self._indexed_here = block["number"]
            return indexed
        finally:
            self._sync_lock.release()

    def rebuild(self, client: LedgerClient) -> int:
        """Drop everything and index ``client``'s contract from its deploy block.

        The drop and the re-indexing are one transaction, so a crash half-way leaves the old
        index in place. This is also how an index is re-pointed at another contract or chain.
        """
        with self._sync_lock:
            self._indexed_here = None
            return _sync.sync(self._db, client, chunk_blocks=self.chunk_blocks, reset=True)

    def lag(self, client: LedgerClient) -> int:
        """How many blocks the index is behind the final head :meth:`sync` would reach."""
        head = _sync.final_head(client)
        last = self.last_block
        if last is None:
            return max(0, head - client.deploy_block + 1)
        return max(0, head - last)

    @property
    def last_block(self) -> int | None:
        """The last block indexed, or None before the first sync (read from the database, so
        it reflects syncs made by other threads and processes)."""
        return _sync.binding_of(self._db.query(_sync.READ_META)).last_block

    def holds(self, block_number: int) -> bool:
        """Whether the index has reached ``block_number``: without a read when this process
        indexed it (or a later block) from its receipts since the last sync, as a replica's
        requests ask of the block their writes are in (on PostgreSQL, a round trip an
        upload saved); else from the database."""
        here = self._indexed_here
        if here is not None and here >= block_number:
            return True
        return (self.last_block or -1) >= block_number

    # -- queries ------------------------------------------------------------------------------

    def kind_of(self, record_hash: bytes | str) -> RecordKindName | None:
        """What a hash is registered as, or None if the index has no record of it."""
        rows = self._db.query("SELECT kind FROM records WHERE hash = ?", (hash_hex(record_hash),))
        return rows[0]["kind"] if rows else None

    def block_of(
        self, event_name: str, record_hash: str, contract: str | None = None
    ) -> int | None:
        """The block of a record's registration (or revocation) event: a hint that lets the
        client read that event from the chain without scanning every block (``BlockHints``).
        With ``contract``, only an event that generation logged (a generation-1 record revoked
        through generation 2 has its revocation in generation 2)."""
        table = "revocations" if event_name == "RecordRevoked" else "records"
        query = f"SELECT block_number, contract FROM {table} WHERE hash = ?"
        with self._db.read() as conn:
            row = conn.execute(query, (record_hash,)).fetchone()
        if row is None:
            return None
        if contract is not None and row["contract"] != contract.lower():
            return None  # another generation's event (or a migrated row not yet backfilled)
        return row["block_number"]

    def registrar_changes(
        self, account: str, contract: str
    ) -> tuple[list[tuple[int, int, bool]], int | None]:
        """``account``'s REGISTRAR_ROLE changes in the generation at ``contract`` (each
        generation has its own AccessControl) as ``(block, log_index, granted)``, and the last
        block the index covers (the client's ``RoleHistory``). An index migrated from schema
        version 2 and not yet synced since covers nothing (None): it cannot tell generations
        apart yet, so the caller reads the chain."""
        with self._db.read() as conn:
            binding = _sync.read_binding(conn)
            if binding.backfill:
                return [], None
            rows = conn.execute(
                "SELECT block_number, log_index, granted FROM registrar_roles "
                "WHERE account = ? AND contract = ? ORDER BY block_number, log_index",
                (account, contract.lower()),
            ).fetchall()
        changes = [(row["block_number"], row["log_index"], bool(row["granted"])) for row in rows]
        return changes, binding.last_block

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
        with self._db.read() as conn:
            total = _count(conn, "dataset")
            page = self._datasets(
                f"{_DATASET_SELECT} {_NEWEST_FIRST} LIMIT ? OFFSET ?", (limit, offset)
            )
        return page, total

    def models(self, offset: int = 0, limit: int = 50) -> tuple[list[IndexedModel], int]:
        """One page of models, newest first, and the total number of models."""
        _check_page(offset, limit)
        with self._db.read() as conn:
            total = _count(conn, "model")
            page = self._models(
                f"{_MODEL_SELECT} {_NEWEST_FIRST} LIMIT ? OFFSET ?", (limit, offset)
            )
        return page, total

    def batches(self, offset: int = 0, limit: int = 50) -> tuple[list[IndexedBatch], int]:
        """One page of prediction batches, newest first, and the total number of batches."""
        _check_page(offset, limit)
        with self._db.read() as conn:
            total = _count(conn, "batch")
            page = self._batches(
                f"{_BATCH_SELECT} {_NEWEST_FIRST} LIMIT ? OFFSET ?", (limit, offset)
            )
        return page, total

    def revoked_and_tainted(self) -> tuple[frozenset[str], frozenset[str]]:
        """The hashes of the revoked records, and of the records with a revoked ancestor (a
        parent dataset, a training dataset, a batch's model, at any depth): what a listing
        filtered by status needs, in two queries whatever the size of the ledger."""
        with self._db.read() as conn:
            revoked = frozenset(row["hash"] for row in conn.execute("SELECT hash FROM revocations"))
            tainted = frozenset(row["h"] for row in conn.execute(_TAINTED))
        return revoked, tainted

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

    # -- row decoding -------------------------------------------------------------------------

    def _datasets(self, query: str, params: tuple[Any, ...]) -> list[IndexedDataset]:
        with self._db.read() as conn:
            rows = conn.execute(query, params).fetchall()
            parents = _inputs(conn, [row["hash"] for row in rows])
        return [
            IndexedDataset(
                content_hash=row["hash"],
                rows_root=row["rows_root"],
                row_count=int(row["row_count"]),
                schema_hash=row["schema_hash"],
                metadata_hash=row["metadata_hash"],
                parents=parents[row["hash"]],
                transform_hash=row["transform_hash"],
                registration=_registration(row),
                revocation=_revocation(row),
            )
            for row in rows
        ]

    def _models(self, query: str, params: tuple[Any, ...]) -> list[IndexedModel]:
        with self._db.read() as conn:
            rows = conn.execute(query, params).fetchall()
            datasets = _inputs(conn, [row["hash"] for row in rows])
        return [
            IndexedModel(
                model_hash=row["hash"],
                datasets=datasets[row["hash"]],
                metadata_hash=row["metadata_hash"],
                registration=_registration(row),
                revocation=_revocation(row),
            )
            for row in rows
        ]

    def _batches(self, query: str, params: tuple[Any, ...]) -> list[IndexedBatch]:
        with self._db.read() as conn:
            rows = conn.execute(query, params).fetchall()
        return [
            IndexedBatch(
                root=row["hash"],
                model_hash=row["model_hash"],
                count=int(row["count"]),
                registration=_registration(row),
                revocation=_revocation(row),
            )
            for row in rows
        ]


# -- helpers ----------------------------------------------------------------------------------


def _registration(row: Mapping[str, Any]) -> Registration:
    return Registration(
        registrant=row["registrant"],
        tx_hash=row["tx_hash"],
        block_number=row["block_number"],
        registered_at=row["registered_at"],
        log_index=row["log_index"],
    )


def _revocation(row: Mapping[str, Any]) -> Revocation | None:
    if row["revoked_hash"] is None:  # the LEFT JOIN found no revocation
        return None
    return Revocation(
        reason=row["revoked_reason"],
        revoker=row["revoker"],
        tx_hash=row["revoked_tx_hash"],
        block_number=row["revoked_block"],
        revoked_at=row["revoked_at"],
        log_index=row["revoked_log_index"],
    )


def _inputs(conn: Any, hashes: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Each record's inputs (parents, training datasets) in the order its event listed them."""
    found: dict[str, list[str]] = {h: [] for h in hashes}
    for start in range(0, len(hashes), _MAX_PARAMETERS):
        chunk = hashes[start : start + _MAX_PARAMETERS]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            "SELECT record_hash, input_hash FROM inputs "
            f"WHERE record_hash IN ({marks}) ORDER BY record_hash, position",
            tuple(chunk),
        )
        for row in rows:
            found[row["record_hash"]].append(row["input_hash"])
    return {h: tuple(inputs) for h, inputs in found.items()}


def _check_page(offset: int, limit: int) -> None:
    if offset < 0 or limit < 0:
        raise ValueError(f"offset and limit must be 0 or more, got {offset} and {limit}")


def _count(conn: Any, kind: str) -> int:
    row = conn.execute("SELECT COUNT(*) AS n FROM records WHERE kind = ?", (kind,)).fetchone()
    return row["n"]

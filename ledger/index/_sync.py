"""The event index's tables and how events get into them: schema, binding and sync.

One file because all three run inside one transaction per sync, and the index's only writer
is easiest to trust read in one place; the rewind after a reorganisation (``_rewind.py``) and
an older generation's superseded writes (``_superseded.py``) are apart.

Queries live in :mod:`ledger.index.sqlite`; this module is the only writer. Every row is derived
from a decoded event plus the timestamp of the event's block, so the file can be deleted and rebuilt
at any time and gives identical query results. Each sync is one SQLite transaction: a crash
leaves the index as it was before the sync or as it is after, never half-applied.

An index is bound to one contract on one chain: the first sync records the contract address,
the chain id and the hash of the last block it indexed. A later sync through a client for
another contract or chain raises :class:`~ledger.index.base.IndexMismatch` rather than silently
rebuilding, because that almost always means a data directory pointed at the wrong node, which
an operator should see. A rebuild (``reset=True``) is the explicit way to accept another chain.

When the chain no longer holds the block the index last saw (a reorganisation deeper than the
backend's confirmations, a reset dev node), the sync *rewinds* by itself: it walks the hashes
it stored for every block holding an event, newest first, down to the newest one the chain
still holds (the fork point; the contract's deploy block minus one if none is left), deletes
the events of the blocks above it and reads the chain again from there, all in the same SQLite
transaction as the new events. The blocks that left are reported to the caller
(:class:`Rewind`), which re-sends its own writes and tells the operator.

A ledger of several generations is read from all of them, in chain order; a write an older
generation took after its successor's deployment counts only where the newest generation counts
it, else it is skipped with a warning (:mod:`ledger.index._superseded` decides).

Table layout, schema version 3 (values are 0x-lowercase-hex hashes and addresses unless said
otherwise). Version 3 added ``contract`` (the generation that logged the event) to ``records``,
``revocations`` and ``registrar_roles``: each generation has its own AccessControl, so a role
change is a fact of one generation only. A version-2 file is migrated on open (the columns are
added, empty, and ``meta`` notes ``backfill_contracts``); its next sync fills them from the
chain's logs before it applies anything new, and until then the index answers no role history
(the reader scans the chain instead). A file of any other version is dropped and re-read from
the chain on open. PostgreSQL takes the same step through Alembic revision r0005.

- ``meta(key, value)``: schema version, chain id, contract address, last indexed block + hash.
- ``records(hash, kind, registrant, tx_hash, block_number, log_index, registered_at, contract)``:
  one row per registered dataset, model or batch.
- ``datasets(hash, rows_root, row_count, schema_hash, metadata_hash, transform_hash)``,
  ``models(hash, metadata_hash)``, ``batches(root, model_hash, count)``: per-kind fields.
- ``inputs(record_hash, position, input_hash)``: a derived dataset's parents, a model's training
  datasets, in the order the event listed them.
- ``revocations(hash, revoker, reason, tx_hash, block_number, log_index, revoked_at, contract)``.
- ``registrar_roles(account, block_number, log_index, granted, contract)``: REGISTRAR_ROLE changes.
- ``blocks(number, hash)``: the hash of every indexed block that holds an event, so a rewind
  finds its fork point. Added without a version change: a file that lacks it gets it empty, and
  a rewind on such a file finds no fork point and re-reads from the deploy block.

Over 400 lines because the schema, the event-to-row mapping and the sync transaction that uses
both are read together; the rewind's helpers live in :mod:`ledger.index._rewind`, the
superseded generations' in :mod:`ledger.index._superseded`, a migrated file's backfill in
:mod:`ledger.index._backfill`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

from ledger.chain.client import LedgerClient
from ledger.formats.events import REGISTRAR_ROLE
from ledger.index._backfill import BACKFILL, CONTRACT_TABLES, backfill_contracts, logged_contracts
from ledger.index._raw import UNREAD, block_header, ledger_logs
from ledger.index._rewind import (
    Rewind,
    block_hash,
    delete_after,
    find_rewind,
    forget_quiet_block,
    insert_block,
)
from ledger.index._superseded import Generations, logged_events, skip_reason
from ledger.index.base import IndexMismatch
from ledger.records import (
    DatasetRegistered,
    LedgerEvent,
    ModelRegistered,
    PredictionsAnchored,
    RecordRevoked,
    RoleChanged,
    hash_hex,
)
from ledger.storage._sqlite import Connections

__all__ = [
    "READ_META",
    "SCHEMA_VERSION",
    "SYNC_LOCK",
    "Binding",
    "RecordEvent",
    "Rewind",
    "apply_event",
    "apply_events",
    "binding_of",
    "block_hash",
    "create_schema",
    "final_head",
    "read_binding",
    "set_head",
    "sync",
]

# The advisory lock a PostgreSQL sync takes, so the replicas' syncs take turns (SQLite's write
# lock does it for a file); any constant of our own, this one spells "ledgidx" in ASCII.
SYNC_LOCK = 0x6C6564676964_78
SCHEMA_VERSION = "3"  # 2: REGISTRAR_ROLE changes; 3: the generation (contract) of each event

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
    registered_at INTEGER NOT NULL,
    contract TEXT  -- the generation that logged it (NULL only until a migrated file's backfill)
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
    revoked_at INTEGER NOT NULL,
    contract TEXT
);
CREATE TABLE IF NOT EXISTS registrar_roles (
    account TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    granted INTEGER NOT NULL,
    contract TEXT,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX IF NOT EXISTS registrar_roles_account ON registrar_roles (account);
CREATE TABLE IF NOT EXISTS blocks (
    number INTEGER PRIMARY KEY,
    hash TEXT NOT NULL
);
"""
# Children first: the per-kind tables and inputs reference records.
_DATA_TABLES = (
    "blocks",
    "registrar_roles",
    "datasets",
    "models",
    "batches",
    "inputs",
    "revocations",
    "records",
)

RecordEvent = (
    DatasetRegistered | ModelRegistered | PredictionsAnchored | RecordRevoked | RoleChanged
)
_RECORD_EVENTS = (
    DatasetRegistered,
    ModelRegistered,
    PredictionsAnchored,
    RecordRevoked,
    RoleChanged,
)
_REGISTRAR_ROLE_HEX = hash_hex(REGISTRAR_ROLE)
log = logging.getLogger("provenance.index")


@dataclass(frozen=True)
class Binding:
    """What an index file says it indexes, read from ``meta``."""

    address: str | None
    chain_id: int | None
    last_block: int | None
    last_block_hash: str | None
    backfill: bool = False
    """Rows migrated from schema version 2 still lack their ``contract``."""


def create_schema(db: Connections) -> None:
    """Create the tables of :data:`SCHEMA_VERSION`, or keep a file that already has them.

    A version-2 file is migrated in place (its rows kept, their ``contract`` filled by the next
    sync); a file written by another schema version is only a cache: its tables are dropped,
    and the next sync re-reads everything from the chain.
    """
    conn = db.get()
    conn.execute("PRAGMA journal_mode = WAL")
    with db.write(conn):
        tables = {row["name"] for row in conn.execute("SELECT name FROM sqlite_master")}
        version = None
        if "meta" in tables:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            version = None if row is None else row["value"]
        if version == "2":
            for table in CONTRACT_TABLES:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN contract TEXT")
            _set_meta(conn, **{BACKFILL: "1"})
        elif version not in (None, SCHEMA_VERSION) or (version is None and "records" in tables):
            for table in (*_DATA_TABLES, "meta"):
                conn.execute(f"DROP TABLE IF EXISTS {table}")
        # executescript() would commit the transaction: run the statements one by one.
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        _set_meta(conn, schema=SCHEMA_VERSION)


READ_META = "SELECT key, value FROM meta"


def read_binding(conn: Any) -> Binding:
    return binding_of(conn.execute(READ_META))


def binding_of(meta_rows: Iterable[Any]) -> Binding:
    """The binding that the rows of :data:`READ_META` record."""
    meta = {row["key"]: row["value"] for row in meta_rows}
    return Binding(
        address=meta.get("address"),
        chain_id=int(meta["chain_id"]) if "chain_id" in meta else None,
        last_block=int(meta["last_block"]) if "last_block" in meta else None,
        last_block_hash=meta.get("last_block_hash"),
        backfill=BACKFILL in meta,
    )


def sync(
    db: Connections,
    client: LedgerClient,
    *,
    chunk_blocks: int,
    reset: bool,
    on_rewind: Callable[[Rewind], None] | None = None,
) -> int:
    """Apply the events after the last indexed block (or, with ``reset``, all of them after
    dropping every row) up to the chain's final head; returns the record events applied.

    If the chain no longer holds the last indexed block, the orphaned blocks are rewound first
    (see the module docstring) and ``on_rewind`` is told before the rewind commits (what it does
    durably is done again if a crash comes in between, as the rewind is found again). The
    caller serialises syncs within its process; SQLite's write lock serialises them across
    processes, and a sync that finds another process got there first keeps what it applied.
    """
    # 1. Where to start: after the last indexed block of this very chain and contract, or
    #    after the fork point if the chain left some of the indexed blocks.
    chain_id = client.chain_id()
    rewind: Rewind | None = None
    with db.read() as conn:
        before = read_binding(conn)
        if not reset:
            _check_binding(db.path, before, client, chain_id)
            rewind = find_rewind(conn, client, before.last_block, before.last_block_hash)
    fresh = reset or before.last_block is None
    start = client.deploy_block if fresh else before.last_block + 1  # type: ignore[operator]
    if rewind is not None:
        start = rewind.fork_block + 1
    # 2. Read the events and their blocks' timestamps and hashes from the chain, outside any
    #    SQLite transaction, in chunks a real node accepts.
    head = final_head(client)
    head_hash = block_hash(client, head) if head >= start else None
    generations = Generations(client) if len(client.generations) > 1 else None
    events = _record_events(client, start, head, chunk_blocks, generations)
    backfill: dict[tuple[int, int], str] | str | None = None
    if before.backfill and not reset:  # a migrated file: its rows' generations, read once
        backfill = (
            {}
            if before.last_block is None
            else logged_contracts(client, before.last_block, chunk_blocks)
        )
    timestamps: dict[int, int] = {}
    hashes: dict[int, str] = {}
    for event in events:
        if event.block_number not in timestamps:
            header = block_header(client, event.block_number)
            if header is UNREAD or header is None:  # None: a web3 read raises BlockNotFound
                block = client.get_block(event.block_number)
                header = hash_hex(bytes(block["hash"])), block["timestamp"]
            hashes[event.block_number], timestamps[event.block_number] = header  # type: ignore[misc]
    moved = head_hash is not None and client.backend.kind != "embedded"
    if moved and block_hash(client, head) != head_hash:  # reorganised while read: read again
        return 0
    if rewind is not None:
        log.error(
            "the chain reorganised %d final block(s) (%d-%d) the index held; %d transaction(s) "
            "left the canonical chain; the index reads them again",
            rewind.depth,
            rewind.fork_block + 1,
            rewind.last_block,
            len(rewind.tx_hashes),
        )
        if on_rewind is not None:  # before the rewind commits: a crash then is told again
            on_rewind(rewind)
    # 3. Apply them in one transaction (taking turns with other processes' syncs).
    with db.write(lock=SYNC_LOCK) as conn:
        if reset:
            for table in _DATA_TABLES:
                conn.execute(f"DELETE FROM {table}")
            conn.execute("DELETE FROM meta WHERE key != 'schema'")
            floor = start - 1
        else:
            now = read_binding(conn)
            if now != before:  # another process synced (or rewound) meanwhile
                _check_binding(db.path, now, client, chain_id)
                if rewind is not None:  # decide again from what it left, next time
                    return 0
            floor = start - 1 if now.last_block is None else now.last_block
            if rewind is not None:
                delete_after(conn, rewind.fork_block)
                floor = rewind.fork_block
        if backfill is not None and read_binding(conn).backfill:  # not done by another sync
            backfill_contracts(conn, backfill)
        fresh_events = [e for e in events if e.block_number > floor]
        applied = apply_events(
            conn, fresh_events, timestamps, contract=client.address, generations=generations
        )
        for number in sorted({e.block_number for e in fresh_events}):
            insert_block(conn, number, hashes[number])
        if head > floor and head_hash is not None:
            set_head(conn, client, chain_id, floor, head, head_hash)
        elif rewind is not None:
            _set_fork_meta(conn, client, rewind.fork_block)
        elif reset or before.address is None:
            _set_meta(conn, address=client.address, chain_id=str(chain_id))
    return applied


def apply_events(
    conn: Any,
    events: Sequence[RecordEvent],
    timestamps: Mapping[int, int],
    *,
    contract: str,
    generations: Generations | None = None,
) -> int:
    """Write ``events`` (in chain order) inside the caller's transaction; ``timestamps`` maps
    each event's block to its time; ``contract`` logged them, unless ``generations`` (a ledger
    of several) says which generation did, and names the superseded writes. Returns how many
    record events (not role changes) were applied."""
    applied = 0
    for event in events:
        if (
            generations is not None
            and (event.tx_hash, event.log_index) in generations.superseded
            and skip_reason(conn, event, generations) is not None
        ):
            continue
        logger = generations.address_of(event) if generations is not None else None
        apply_event(conn, event, timestamps[event.block_number], logger or contract)
        applied += not isinstance(event, RoleChanged)
    return applied


def apply_event(conn: Any, event: RecordEvent, timestamp: int, contract: str) -> None:
    """Write one event, logged by the generation at ``contract``. Plain INSERTs: an event
    applied twice is a bug, and fails loudly (a superseded generation's write the newest does
    not count is filtered out before)."""
    contract = contract.lower()
    where = {
        "tx_hash": event.tx_hash,
        "block_number": event.block_number,
        "log_index": event.log_index,
    }
    if isinstance(event, RoleChanged):
        if event.role == _REGISTRAR_ROLE_HEX:
            _insert(
                conn,
                "registrar_roles",
                account=event.account,
                block_number=event.block_number,
                log_index=event.log_index,
                granted=int(event.granted),
                contract=contract,
            )
        return
    if isinstance(event, RecordRevoked):
        _insert(
            conn,
            "revocations",
            hash=event.record_hash,
            revoker=event.revoker,
            reason=event.reason,
            **where,
            revoked_at=timestamp,
            contract=contract,
        )
        return
    if isinstance(event, DatasetRegistered):
        record_hash, kind, inputs = event.content_hash, "dataset", event.parents
    elif isinstance(event, ModelRegistered):
        record_hash, kind, inputs = event.model_hash, "model", event.datasets
    else:
        record_hash, kind, inputs = event.root, "batch", ()
    _insert(
        conn,
        "records",
        hash=record_hash,
        kind=kind,
        registrant=event.registrant,
        **where,
        registered_at=timestamp,
        contract=contract,
    )
    if isinstance(event, DatasetRegistered):
        _insert(
            conn,
            "datasets",
            hash=record_hash,
            rows_root=event.rows_root,
            row_count=str(event.row_count),
            schema_hash=event.schema_hash,
            metadata_hash=event.metadata_hash,
            transform_hash=event.transform_hash,
        )
    elif isinstance(event, ModelRegistered):
        _insert(conn, "models", hash=record_hash, metadata_hash=event.metadata_hash)
    else:
        _insert(
            conn, "batches", root=record_hash, model_hash=event.model_hash, count=str(event.count)
        )
    for position, input_hash in enumerate(inputs):
        _insert(conn, "inputs", record_hash=record_hash, position=position, input_hash=input_hash)


def final_head(client: LedgerClient) -> int:
    """The newest block that counts as final for this client's backend: the latest block minus
    the backend's confirmations (0 on dev chains), the depth the client waits for before it
    calls a write done, so the index never holds a block that could still be reorganised away."""
    return client.latest_block() - client.backend.confirmations


# -- helpers ----------------------------------------------------------------------------------


def _check_binding(path: Path, binding: Binding, client: LedgerClient, chain_id: int) -> None:
    """The index must be of this chain and of one of the ledger's generations: an index made
    before an upgrade goes on from its last block (the next sync binds it to the newest
    generation), unless it had read past a later generation's deployment without its events."""
    if binding.address is None:
        return
    generations = [g.address.lower() for g in client.generations]
    indexed = binding.address.lower()
    if indexed in generations and binding.chain_id == chain_id:
        later = client.generations[generations.index(indexed) + 1 :]
        if not later or binding.last_block is None or binding.last_block < later[0].first_block:
            return
        raise IndexMismatch(
            f"{path} indexes generation {binding.address} up to block {binding.last_block}, "
            f"past the deployment of its successor {later[0].address} (block "
            f"{later[0].first_block}) whose events it lacks: run `provenance index rebuild`",
            path=str(path),
            indexed_address=binding.address,
            indexed_chain_id=binding.chain_id,
            address=client.address,
            chain_id=chain_id,
        )
    if indexed != client.address.lower() or binding.chain_id != chain_id:
        raise IndexMismatch(
            f"{path} indexes contract {binding.address} on chain {binding.chain_id}, "
            f"not {client.address} on chain {chain_id}",
            path=str(path),
            indexed_address=binding.address,
            indexed_chain_id=binding.chain_id,
            address=client.address,
            chain_id=chain_id,
        )


def _set_fork_meta(conn: Any, client: LedgerClient, fork_block: int) -> None:
    """After a rewind that read nothing new: the fork point is the last indexed block."""
    found = block_hash(client, fork_block) if fork_block >= client.deploy_block else None
    if found is None:
        conn.execute("DELETE FROM meta WHERE key IN ('last_block', 'last_block_hash')")
        return
    insert_block(conn, fork_block, found)
    _set_meta(conn, last_block=str(fork_block), last_block_hash=found)


def _record_events(
    client: LedgerClient,
    start: int,
    head: int,
    chunk_blocks: int,
    generations: Generations | None,
) -> list[RecordEvent]:
    """The record events of blocks ``start..head``, in chain order, fetched in chunks (noting
    in ``generations``, if given, where each was logged)."""
    found: list[RecordEvent] = []
    for low in range(start, head + 1, chunk_blocks):
        high = min(head, low + chunk_blocks - 1)
        if generations is not None:
            found.extend(logged_events(client, low, high, _RECORD_EVENTS, generations))
            continue
        raw = ledger_logs(client, low, high)  # as the node sent them, on RPC nodes
        events: list[LedgerEvent] = client.events(low, high) if raw is UNREAD else raw  # type: ignore[assignment]
        found.extend(e for e in events if isinstance(e, _RECORD_EVENTS))
    return found


def _insert(conn: Any, table: str, **columns: object) -> None:
    """``INSERT INTO table (named columns)``: values are bound by column name, never by the
    table's column order. ``table`` and the names are this module's constants, never input."""
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(columns.values()))


def set_head(
    conn: Any, client: LedgerClient, chain_id: int, previous: int, head: int, head_hash: str
) -> None:
    """Move the indexed head from ``previous`` to ``head`` (the sync's, or a block indexed from
    its receipts): the previous head's row goes unless it holds events, the new one is kept
    with its hash, and ``meta`` names the ledger and the head."""
    forget_quiet_block(conn, previous)
    insert_block(conn, head, head_hash)
    _set_meta(
        conn,
        address=client.address,
        chain_id=str(chain_id),
        deploy_block=str(client.deploy_block),
        last_block=str(head),
        last_block_hash=head_hash,
    )


def _set_meta(conn: Any, **values: str | None) -> None:
    """Upsert the ``meta`` rows given (None: left as they are) in one statement: on
    PostgreSQL every statement is a round trip, and a block indexed sets five."""
    pairs = [(key, value) for key, value in values.items() if value is not None]
    if pairs:
        conn.execute(
            f"INSERT INTO meta (key, value) VALUES {', '.join(['(?, ?)'] * len(pairs))} "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            tuple(chain.from_iterable(pairs)),
        )

"""Indexing a block this process just wrote from its receipts, instead of reading it again.

After every write the service used to sync the index: ask the node for its head, the last
indexed block's hash, the logs since, each event block's header. But the writer holds all of
that already: the receipts of its transactions (their logs are the events) and the block it
read for their time. :func:`index_block` applies them, and it is an *addition* to the sync,
never a second source of truth:

1. It applies a block only where the sync would apply exactly the same rows: the block is the
   very next one after the indexed head and its parent is the head the index stored (so no
   block was skipped and no reorganisation came in between), the receipts are those of *every*
   transaction of the block (so no other sender's event is missed), the ledger has one
   generation (the sync's superseded-write rules stay in one place), and the backend counts a
   block final at once (no confirmations: the index never holds a block that is not final).
2. It writes what the sync writes for that block: the events (through the sync's own
   :func:`~ledger.index._sync.apply_events`), the block's hash, the new head in ``meta``, in one
   transaction taken with the sync's lock, and the binding re-checked inside it.
3. Anything else (a gap, a block shared with others, a sync in progress) changes nothing and
   returns False: the next sync reads the block from the chain as before.

The normal sync stays the authority: it starts after the head written here and first checks
that the chain still holds that head's hash, so a block that left the canonical chain is found
and rewound exactly as if the sync had indexed it itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ledger.chain.client import LedgerClient
from ledger.index._sync import SYNC_LOCK, RecordEvent, apply_events, set_head
from ledger.records import hash_hex

__all__ = ["index_block"]


def index_block(db: Any, client: LedgerClient, block: Any, receipts: Sequence[Any]) -> bool:
    """Index ``block`` (a header with its transactions' hashes) from ``receipts``, the
    receipts of all its transactions, if it directly extends the indexed head; returns whether
    it did (see the module docstring for when it does not, and why that is safe). ``db`` is
    the index's :class:`~ledger.index._sql.Transactions` (SQLite's or PostgreSQL's)."""
    # 1. What the block and the receipts say, before any transaction is opened.
    if len(client.generations) > 1 or client.backend.confirmations:
        return False
    number, block_hash = block["number"], hash_hex(bytes(block["hash"]))
    in_block = {hash_hex(bytes(tx)) for tx in block["transactions"]}
    if not receipts or {hash_hex(bytes(r["transactionHash"])) for r in receipts} != in_block:
        return False
    if any(hash_hex(bytes(r["blockHash"])) != block_hash for r in receipts):
        return False
    events = [
        event
        for receipt in sorted(receipts, key=lambda r: r["transactionIndex"])
        for event in client.decode_logs(receipt["logs"])
        if isinstance(event, RecordEvent)
    ]
    events.sort(key=lambda e: e.log_index)
    chain_id = client.chain_id()
    # 2. What the sync would write for them, applied only where it would: the binding is
    # checked inside the transaction, under the sync's lock (else 3. the sync reads the block
    # from the chain). On PostgreSQL, one round trip.
    recorded = _Recorded()
    apply_events(recorded, events, {number: block["timestamp"]}, contract=client.address)
    set_head(recorded, client, chain_id, number - 1, number, block_hash)
    extends = (
        "SELECT (SELECT count(*) FROM meta WHERE (key = 'address' AND lower(value) = ?) "
        "OR (key = 'chain_id' AND value = ?) OR (key = 'last_block' AND value = ?) "
        "OR (key = 'last_block_hash' AND value = ?)) = 4",
        (client.address.lower(), str(chain_id), str(number - 1), hash_hex(block["parentHash"])),
    )
    return db.write_if(extends, recorded.statements, lock=SYNC_LOCK)


class _Recorded:
    """A connection that keeps the statements run on it, to be sent together: what
    :func:`apply_events` and :func:`set_head` run are writes whose rows nobody reads."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Sequence[Any]]] = []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.statements.append((sql, tuple(params)))

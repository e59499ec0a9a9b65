"""Writes to a superseded generation: which of them the newest generation counts (see the
paragraph on generations in :mod:`ledger.index._sync`, the only caller).

An older generation is immutable and knows nothing of its successors, so it keeps accepting
writes from its own registrars after an upgrade. The newest generation answers a hash from the
newest generation that holds a slot for it (a registration there, or the revoked copy a
revocation through it keeps), else from its predecessors. So an event logged by a generation
after its successor's deployment (a *superseded* write) counts only if no newer generation
holds its hash:

- a registration counts iff the index holds no registration of the hash: a newer generation's
  write-once check sees every older one, so a hash already indexed was registered first, by a
  newer generation, and the newest generation answers that one;
- a revocation counts iff the index holds no revocation of the hash (the first one stands: a
  newer generation refuses to revoke what an older one shows revoked) and the registration it
  holds was logged by this generation or an older one; if a newer generation logged it, the
  superseded generation revoked its own later copy, which the newest generation never reads.

Every other event (the newest generation's at its block, and every event of a ledger with one
generation) is applied as it comes, and an event applied twice still fails loudly: a superseded
write whose stored counterpart is the very same log (same transaction and log index) is applied
too, so that its INSERT raises. A skipped write is logged with both events' positions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ledger.chain.client import LedgerClient
from ledger.records import (
    DatasetRegistered,
    LedgerEvent,
    ModelRegistered,
    PredictionsAnchored,
    RecordRevoked,
)

__all__ = ["Generations", "logged_events", "skip_reason"]

log = logging.getLogger("provenance.index")


@dataclass
class Generations:
    """Where a sync's events were logged, for a ledger of more than one generation:
    ``superseded`` maps each event (transaction hash, log index) logged by a generation at or
    after its successor's deployment block to that generation's position (0: the oldest);
    ``logged`` maps every event of the sync to its generation's position."""

    client: LedgerClient
    superseded: dict[tuple[str, int], int] = field(default_factory=dict)
    logged: dict[tuple[str, int], int] = field(default_factory=dict)

    def position(self, address: str) -> int | None:
        """The position of the generation at ``address``, or None for another contract."""
        wanted = address.lower()
        for position, generation in enumerate(self.client.generations):
            if generation.address.lower() == wanted:
                return position
        return None

    def address_of(self, event: LedgerEvent) -> str | None:
        """The address of the generation that logged ``event`` in this sync, if it did."""
        position = self.logged.get((event.tx_hash, event.log_index))
        return None if position is None else self.client.generations[position].address

    def generation_of(self, tx_hash: str, log_index: int) -> int | None:
        """Which generation logged an event: this sync's from memory, an earlier sync's from
        its transaction's receipt (one read, only for a superseded revocation)."""
        found = self.logged.get((tx_hash, log_index))
        if found is not None:
            return found
        address = self.client.log_address(tx_hash, log_index)
        return None if address is None else self.position(address)


def logged_events(
    client: LedgerClient, start: int, end: int, wanted: tuple[type, ...], generations: Generations
) -> list[Any]:
    """The ``wanted`` events of blocks ``start..end`` in chain order, noting in ``generations``
    where each was logged and which were superseded writes."""
    successors = {
        g.address.lower(): later.first_block
        for g, later in zip(client.generations, client.generations[1:], strict=False)
    }
    positions = {g.address.lower(): i for i, g in enumerate(client.generations)}
    found = []
    for address, event in client.logged_events(start, end):
        if not isinstance(event, wanted):
            continue
        key, emitter = (event.tx_hash, event.log_index), address.lower()
        generations.logged[key] = positions[emitter]
        successor_block = successors.get(emitter)
        if successor_block is not None and event.block_number >= successor_block:
            generations.superseded[key] = positions[emitter]
        found.append(event)
    return found


def skip_reason(conn: Any, event: LedgerEvent, generations: Generations) -> str | None:
    """Why the newest generation does not count ``event``, a superseded write (see the module
    docstring), or None to apply it. Reads the index inside the caller's transaction."""
    position = generations.superseded[(event.tx_hash, event.log_index)]
    if isinstance(event, RecordRevoked):
        record_hash, table = event.record_hash, "revocations"
    elif isinstance(event, DatasetRegistered):
        record_hash, table = event.content_hash, "records"
    elif isinstance(event, ModelRegistered):
        record_hash, table = event.model_hash, "records"
    elif isinstance(event, PredictionsAnchored):
        record_hash, table = event.root, "records"
    else:
        return None  # a role change: each generation's roles are its own facts
    stored = _stored(conn, table, record_hash)
    if stored is not None:
        if (stored["tx_hash"], stored["log_index"]) == (event.tx_hash, event.log_index):
            return None  # the same event twice: its INSERT fails loudly, as it must
        return _skip(event, record_hash, position, stored, "the index holds an earlier one")
    if isinstance(event, RecordRevoked):
        registered = _stored(conn, "records", record_hash)
        if registered is not None:
            holder = (
                generations.position(registered["contract"])
                if registered["contract"]  # NULL only in a migrated file not yet backfilled
                else generations.generation_of(registered["tx_hash"], registered["log_index"])
            )
            if holder is not None and holder > position:
                return _skip(
                    event,
                    record_hash,
                    position,
                    registered,
                    f"generation {holder + 1} holds the registration the newest one reads",
                )
    return None


def _stored(conn: Any, table: str, record_hash: str) -> Any:
    query = f"SELECT tx_hash, block_number, log_index, contract FROM {table} WHERE hash = ?"
    return conn.execute(query, (record_hash,)).fetchone()


def _skip(event: LedgerEvent, record_hash: str, position: int, stored: Any, why: str) -> str:
    reason = (
        f"{type(event).__name__} of {record_hash} logged by superseded generation "
        f"{position + 1} (tx {event.tx_hash}, block {event.block_number}, log "
        f"{event.log_index}) is not counted by the newest generation: {why} (tx "
        f"{stored['tx_hash']}, block {stored['block_number']}, log {stored['log_index']})"
    )
    log.warning("%s", reason)
    return reason

"""The backfill of an index migrated from schema version 2 (see :mod:`ledger.index._sync`, the
only caller): which generation logged each event its rows hold.

Version 3 keeps, for every registration, revocation and REGISTRAR_ROLE change, the address of
the generation that logged it (each generation has its own roles). A version-2 file (or a
PostgreSQL database migrated by Alembic revision r0005) gets the column empty and the mark
:data:`BACKFILL` in ``meta``; its next sync reads the logs of the blocks the index holds (none
for a ledger of one generation: every row is that generation's) and fills the rows in the same
transaction as its new events, then clears the mark.
"""

from __future__ import annotations

from typing import Any

from ledger.chain.client import LedgerClient

__all__ = ["BACKFILL", "CONTRACT_TABLES", "backfill_contracts", "logged_contracts"]

BACKFILL = "backfill_contracts"  # in meta: rows migrated from version 2 lack their contract
CONTRACT_TABLES = ("records", "revocations", "registrar_roles")


def logged_contracts(
    client: LedgerClient, last_block: int, chunk_blocks: int
) -> dict[tuple[int, int], str] | str:
    """For a migrated file's backfill: which generation logged each event of the blocks the
    index holds, as ``(block, log index) → address`` (lower case), or the one address of a
    ledger with a single generation (no log to read)."""
    if len(client.generations) == 1:
        return client.address.lower()
    found: dict[tuple[int, int], str] = {}
    for low in range(client.deploy_block, last_block + 1, chunk_blocks):
        high = min(last_block, low + chunk_blocks - 1)
        for address, event in client.logged_events(low, high):
            found[(event.block_number, event.log_index)] = address.lower()
    return found


def backfill_contracts(conn: Any, contracts: dict[tuple[int, int], str] | str | None) -> None:
    """Fill the ``contract`` of rows migrated from schema version 2, inside the sync's
    transaction, and clear the mark. ``contracts`` is :func:`logged_contracts`'s answer, or
    None when it was not read (the index held no block then): read again next sync."""
    if contracts is None:
        return
    for table in CONTRACT_TABLES:
        if isinstance(contracts, str):
            conn.execute(f"UPDATE {table} SET contract = ? WHERE contract IS NULL", (contracts,))
            continue
        rows = conn.execute(
            f"SELECT block_number, log_index FROM {table} WHERE contract IS NULL"
        ).fetchall()
        for row in rows:
            address = contracts.get((row["block_number"], row["log_index"]))
            if address is not None:
                conn.execute(
                    f"UPDATE {table} SET contract = ? WHERE block_number = ? AND log_index = ?",
                    (address, row["block_number"], row["log_index"]),
                )
    conn.execute("DELETE FROM meta WHERE key = ?", (BACKFILL,))

"""Rewinding the event index past blocks that left the canonical chain (see the reorganisation
paragraph of :mod:`ledger.index._sync`, the only caller): the stored block hashes, the search
for the fork point, and the deletion of the orphaned blocks' rows.

A module of its own so that the sync stays under our file-size bound; it reads and writes only
inside the transaction and with the connection its caller hands it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3.exceptions import BlockNotFound

from ledger.chain.client import LedgerClient
from ledger.index._raw import UNREAD, block_header
from ledger.records import hash_hex

__all__ = [
    "Rewind",
    "block_hash",
    "delete_after",
    "find_rewind",
    "forget_quiet_block",
    "insert_block",
]


@dataclass(frozen=True)
class Rewind:
    """Blocks the index held that left the canonical chain: ``fork_block`` is the newest block
    still held (every block above it, up to ``last_block``, was orphaned), ``tx_hashes`` the
    transactions whose events were deleted with them."""

    fork_block: int
    last_block: int
    tx_hashes: tuple[str, ...]

    @property
    def depth(self) -> int:
        """How many indexed (final) blocks were orphaned."""
        return self.last_block - self.fork_block


def block_hash(client: LedgerClient, number: int) -> str | None:
    """The hash of block ``number`` on the client's chain, or None if the chain is shorter."""
    if number < 0:
        return None
    header = block_header(client, number)  # as the node sent it, on RPC nodes (see _raw.py)
    if header is not UNREAD:
        return None if header is None else header[0]  # type: ignore[index]
    try:
        block = client.get_block(number)  # in process on the embedded chain
    except BlockNotFound:  # a node that was reset holds fewer blocks than the index saw
        return None
    return None if block is None else hash_hex(bytes(block["hash"]))


def find_rewind(
    conn: Any,
    client: LedgerClient,
    last_block: int | None,
    last_block_hash: str | None,
) -> Rewind | None:
    """None while the chain still holds the last indexed block; else the fork point: the
    newest stored block hash the chain still holds (one node call per stored block walked),
    and the transactions of the events above it."""
    if last_block is None or last_block_hash is None:
        return None
    if block_hash(client, last_block) == last_block_hash:
        return None
    fork = client.deploy_block - 1
    for row in conn.execute(
        "SELECT number, hash FROM blocks WHERE number < ? ORDER BY number DESC",
        (last_block,),
    ):
        if block_hash(client, row["number"]) == row["hash"]:
            fork = row["number"]
            break
    tx_hashes = [
        row["tx_hash"]
        for row in conn.execute(
            "SELECT tx_hash, block_number, log_index FROM records WHERE block_number > ? "
            "UNION SELECT tx_hash, block_number, log_index FROM revocations "
            "WHERE block_number > ? ORDER BY block_number, log_index",
            (fork, fork),
        )
    ]
    return Rewind(fork, last_block, tuple(dict.fromkeys(tx_hashes)))


def delete_after(conn: Any, fork_block: int) -> None:
    """Delete every indexed row of the blocks after ``fork_block``, inside the caller's
    transaction."""
    orphaned = "SELECT hash FROM records WHERE block_number > ?"
    for table, column in (
        ("datasets", "hash"),
        ("models", "hash"),
        ("batches", "root"),
        ("inputs", "record_hash"),
    ):
        conn.execute(f"DELETE FROM {table} WHERE {column} IN ({orphaned})", (fork_block,))
    for table in ("records", "revocations", "registrar_roles"):
        conn.execute(f"DELETE FROM {table} WHERE block_number > ?", (fork_block,))
    conn.execute("DELETE FROM blocks WHERE number > ?", (fork_block,))


def forget_quiet_block(conn: Any, number: int) -> None:
    """Drop the stored hash of a block that holds no event (a former head): the hashes of the
    blocks with events are enough to find a fork point, and a row per sync would pile up."""
    conn.execute(
        "DELETE FROM blocks WHERE number = ? AND NOT EXISTS "
        "(SELECT 1 FROM records WHERE block_number = ?) AND NOT EXISTS "
        "(SELECT 1 FROM revocations WHERE block_number = ?) AND NOT EXISTS "
        "(SELECT 1 FROM registrar_roles WHERE block_number = ?)",
        (number, number, number, number),
    )


def insert_block(conn: Any, number: int, block_hash_hex: str) -> None:
    conn.execute(
        "INSERT INTO blocks (number, hash) VALUES (?, ?) "
        "ON CONFLICT (number) DO UPDATE SET hash = excluded.hash",
        (number, block_hash_hex),
    )

"""The write pipeline's journal: every transaction handed to an RPC node, until it is mined.

A signed transaction is written here (SQLite, WAL, ``synchronous=FULL``) *before* the node sees
it, and deleted once one of its variants (the original, or a replacement at the same nonce with
higher fees) is mined. After a crash, the entries left are exactly the transactions that may be
in the node's pool, or may never have reached it; start-up re-sends the very same signed bytes
(a node that holds them already says so, and the chain cannot hold them twice), so nothing a
crash interrupted is sent again as a new transaction and no nonce is left unfilled.

Each entry keeps the keys of the records its transaction writes, so a request that retries one
of them after the restart waits for that transaction instead of sending another.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ledger.chain._transactor import SignedTx

__all__ = ["JournalEntry", "TxJournal"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sent (
    tx_hash TEXT PRIMARY KEY,
    nonce INTEGER NOT NULL,
    to_address TEXT NOT NULL,
    data TEXT NOT NULL,
    gas INTEGER NOT NULL,
    max_fee TEXT NOT NULL,       -- wei in decimal: fees may pass SQLite's 2**63
    priority_fee TEXT NOT NULL,
    raw BLOB NOT NULL,
    keys TEXT NOT NULL           -- JSON list of the record keys the transaction writes
);
CREATE INDEX IF NOT EXISTS sent_by_nonce ON sent (nonce);
"""


@dataclass(frozen=True)
class JournalEntry:
    """One nonce still in flight: its variants, oldest first, and the records they write."""

    nonce: int
    variants: tuple[SignedTx, ...]
    keys: tuple[str, ...]


class TxJournal:
    """The journal file; safe to share between the pipeline's threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._conn.execute(statement)

    def record(self, signed: SignedTx, keys: Sequence[str]) -> None:
        """Write one variant, durably, before it is broadcast."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO sent (tx_hash, nonce, to_address, data, gas, max_fee, "
                "priority_fee, raw, keys) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    signed.tx_hash,
                    signed.nonce,
                    signed.tx["to"],
                    signed.tx["data"],
                    signed.gas,
                    str(signed.max_fee),
                    str(signed.priority_fee),
                    signed.raw,
                    json.dumps(list(keys)),
                ),
            )

    def done(self, nonce: int) -> None:
        """Forget every variant at ``nonce``: one of them is mined, or the nonce is used."""
        with self._lock:
            self._conn.execute("DELETE FROM sent WHERE nonce = ?", (nonce,))

    def forget(self, tx_hash: str) -> None:
        """Forget one variant the node refused outright (it was never in its pool)."""
        with self._lock:
            self._conn.execute("DELETE FROM sent WHERE tx_hash = ?", (tx_hash,))

    def entries(self) -> list[JournalEntry]:
        """Every nonce still in flight, in nonce order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT tx_hash, nonce, to_address, data, gas, max_fee, priority_fee, raw, keys "
                "FROM sent ORDER BY nonce, CAST(max_fee AS INTEGER), rowid"
            ).fetchall()
        grouped: dict[int, list[tuple]] = {}
        for row in rows:
            grouped.setdefault(row[1], []).append(row)
        entries = []
        for nonce, group in grouped.items():
            variants = tuple(
                SignedTx(
                    tx={"to": to, "data": data},
                    gas=gas,
                    nonce=nonce,
                    max_fee=int(max_fee),
                    priority_fee=int(priority),
                    tx_hash=tx_hash,
                    raw=bytes(raw),
                )
                for tx_hash, _, to, data, gas, max_fee, priority, raw, _keys in group
            )
            entries.append(JournalEntry(nonce, variants, tuple(json.loads(group[-1][8]))))
        return entries

    def close(self) -> None:
        with self._lock:
            self._conn.close()

"""The write pipeline's journal: every transaction handed to an RPC node, until it is final.

A signed transaction is written here (SQLite, WAL, ``synchronous=FULL``) *before* the node sees
it. When one of its variants (the original, or a replacement at the same nonce with higher
fees) is mined, the block it is in is noted (:meth:`TxJournal.included`, number and hash); when
that block is final (the backend's confirmations deep) the nonce is marked done. After a crash,
the entries not done are exactly the transactions that may be in the node's pool, may never
have reached it, or sit in a block a reorganisation may still take away; start-up re-sends the
very same signed bytes (a node that holds them already says so, and the chain cannot hold them
twice), so nothing a crash interrupted is sent again as a new transaction and no nonce is left
unfilled.

Done nonces are kept (the newest :data:`KEEP_DONE` of them), because a reorganisation deeper
than the confirmations can still take a final block away: the index notices, and the pipeline
re-opens the journaled transactions of the orphaned blocks (:meth:`TxJournal.reopen`) and sends
them again, at their own nonces.

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

__all__ = ["KEEP_DONE", "JournalEntry", "TxJournal"]

KEEP_DONE = 4096  # done nonces whose signed bytes are kept for a reorganisation past finality

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
CREATE TABLE IF NOT EXISTS accepted (   -- writes a client was answered 202 for, until settled
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    item TEXT NOT NULL     -- the record's fields, JSON
);
CREATE TABLE IF NOT EXISTS marks (   -- where a nonce's transaction was mined, and done once final
    nonce INTEGER PRIMARY KEY,
    done INTEGER NOT NULL,
    block_number INTEGER,
    block_hash TEXT
);
"""


@dataclass(frozen=True)
class JournalEntry:
    """One nonce still in flight: its variants, oldest first, and the records they write."""

    nonce: int
    variants: tuple[SignedTx, ...]
    keys: tuple[str, ...]
    block_number: int | None = None  # the block it was last seen mined in, not final yet
    block_hash: str | None = None


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

    def included(self, nonce: int, block_number: int, block_hash: str) -> None:
        """Note the block ``nonce``'s transaction was mined in (not final yet)."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO marks (nonce, done, block_number, block_hash) "
                "VALUES (?, 0, ?, ?)",
                (nonce, block_number, block_hash),
            )

    def done(self, nonce: int) -> None:
        """Mark ``nonce`` done: one of its variants is final, or the nonce is used. Its rows
        are kept (a reorganisation past finality may need them) until :data:`KEEP_DONE` newer
        nonces are done."""
        with self._lock, self._conn:
            self._conn.execute("BEGIN")
            self._conn.execute("INSERT OR REPLACE INTO marks (nonce, done) VALUES (?, 1)", (nonce,))
            old = nonce - KEEP_DONE
            self._conn.execute(
                "DELETE FROM sent WHERE nonce < ? AND nonce IN "
                "(SELECT nonce FROM marks WHERE done = 1)",
                (old,),
            )
            self._conn.execute("DELETE FROM marks WHERE nonce < ? AND done = 1", (old,))

    def reopen(self, tx_hash: str) -> JournalEntry | None:
        """Put the nonce that ``tx_hash`` was sent at back in flight (its block left the
        canonical chain) and return its entry; None if the journal does not hold it."""
        with self._lock:
            row = self._conn.execute(
                "SELECT nonce FROM sent WHERE tx_hash = ?", (tx_hash,)
            ).fetchone()
            if row is None:
                return None
            self._conn.execute("DELETE FROM marks WHERE nonce = ?", (row[0],))
        return next((e for e in self.entries() if e.nonce == row[0]), None)

    def newest_at(self, nonce: int) -> str | None:
        """The hash of the newest variant journaled at ``nonce`` (done or not), or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT tx_hash FROM sent WHERE nonce = ? ORDER BY CAST(max_fee AS INTEGER) DESC, "
                "rowid DESC LIMIT 1",
                (nonce,),
            ).fetchone()
        return None if row is None else row[0]

    def accept(self, items: Sequence[tuple[str, str, str]]) -> None:
        """Write ``(key, kind, fields as JSON)`` of writes answered on acceptance, durably and
        together, before the answer: a crash after it re-queues them (:meth:`accepted`)."""
        with self._lock, self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT OR REPLACE INTO accepted (key, kind, item) VALUES (?, ?, ?)", items
            )

    def accepted(self) -> list[tuple[str, str, str]]:
        """Every accepted write not settled yet: ``(key, kind, fields as JSON)``."""
        with self._lock:
            return self._conn.execute(
                "SELECT key, kind, item FROM accepted ORDER BY rowid"
            ).fetchall()

    def settle(self, keys: Sequence[str]) -> None:
        """Forget accepted writes that are final, or refused for good."""
        with self._lock, self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany("DELETE FROM accepted WHERE key = ?", [(k,) for k in keys])

    def forget(self, tx_hash: str) -> None:
        """Forget one variant the node refused outright (it was never in its pool)."""
        with self._lock:
            self._conn.execute("DELETE FROM sent WHERE tx_hash = ?", (tx_hash,))

    def entries(self) -> list[JournalEntry]:
        """Every nonce not done, in nonce order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT tx_hash, sent.nonce, to_address, data, gas, max_fee, priority_fee, raw, "
                "keys FROM sent LEFT JOIN marks ON marks.nonce = sent.nonce "
                "WHERE marks.done IS NULL OR marks.done = 0 "
                "ORDER BY sent.nonce, CAST(max_fee AS INTEGER), sent.rowid"
            ).fetchall()
            marks = {
                nonce: (number, block)
                for nonce, number, block in self._conn.execute(
                    "SELECT nonce, block_number, block_hash FROM marks WHERE done = 0"
                )
            }
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
            number, block = marks.get(nonce, (None, None))
            entries.append(
                JournalEntry(nonce, variants, tuple(json.loads(group[-1][8])), number, block)
            )
        return entries

    def close(self) -> None:
        with self._lock:
            self._conn.close()

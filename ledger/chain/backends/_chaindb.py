"""A py-evm key-value store kept in one SQLite file and committed once per block.

py-evm 0.12 ships only an in-memory store. Its chain database talks to any ``DatabaseAPI``
through ``eth.db.atomic.AtomicDB``, so a persistent chain only needs a durable key-value store
underneath. Two properties matter for a ledger:

* **Nothing half-written.** Every write the chain makes while a transaction is applied and its
  block is mined (state trie nodes, receipts, header, canonical-head pointer, transaction index)
  is buffered in memory and written in *one* SQLite transaction by :meth:`commit`. A crash
  before the commit leaves the previous block as the head; a crash after it leaves the new one.
* **Acknowledged means durable.** The file is in WAL mode with ``synchronous=FULL``, so
  :meth:`commit` returns only after the write-ahead log has been fsynced.

Reads see buffered writes first, then a cache of committed values, then the file, so the chain
behaves exactly as over a dict. py-evm reads the same trie nodes over and over (about 70 reads
per transaction over a few hundred distinct keys); the cache keeps those off SQLite.

:class:`CommittedView` is the other side: a read-only view of the same file for another
process, which sees one committed block at a time and never the writer's buffer or lock.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eth.db.backends.base import BaseDB
from eth_hash.auto import keccak

__all__ = ["CommittedView", "SqliteKeyValueStore"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)

# A deleted key waiting for the next commit.
_TOMBSTONE = None

# Committed values kept in memory (trie nodes are a few hundred bytes: ~4 MiB at most). A block
# reads a few hundred distinct keys, the upper trie nodes most: 8,192 keep them. 65,536 held
# every node written for 3,000 blocks, so a sealing stream's service grew by 10 KB a block for
# as long (issue 27, "memory flat"), and its seals were no faster (BENCHMARKS, fourteenth).
_CACHE_ENTRIES = 8_192
# SQLite's own page cache of the chain file, under that (the OS caches the file too): 64 MiB
# grew with the file, 10 KB a block, for as long as the chain stayed under it.
_PAGE_CACHE_KIB = 8_192


class SqliteKeyValueStore(BaseDB):
    """py-evm ``DatabaseAPI`` over a SQLite file, with writes buffered until :meth:`commit`.

    Not thread-safe on its own: the embedded backend serialises every chain access behind one
    lock, which is also what py-evm needs.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a read never opens (or
        # commits) a write transaction behind our back.
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(f"PRAGMA cache_size=-{_PAGE_CACHE_KIB}")
        for statement in _SCHEMA:
            self._conn.execute(statement)
        self._pending: dict[bytes, bytes | None] = {}
        self._cache: OrderedDict[bytes, bytes] = OrderedDict()

    # -- DatabaseAPI -------------------------------------------------------------------------

    def __getitem__(self, key: bytes) -> bytes:
        value, stored = _lookup(key, self._pending, self._cache, self._conn)
        if stored:
            self._remember(key, value)
        return value

    def _remember(self, key: bytes, value: bytes) -> None:
        cache = self._cache
        cache[key] = value
        cache.move_to_end(key)
        if len(cache) > _CACHE_ENTRIES:
            cache.popitem(last=False)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._pending[key] = value

    def __delitem__(self, key: bytes) -> None:
        if not self._exists(key):
            raise KeyError(key)
        self._pending[key] = _TOMBSTONE

    def _exists(self, key: bytes) -> bool:
        if key in self._pending:
            return self._pending[key] is not _TOMBSTONE
        if key in self._cache:
            return True
        row = self._conn.execute("SELECT 1 FROM kv WHERE key = ?", (key,)).fetchone()
        return row is not None

    # -- durability --------------------------------------------------------------------------

    @property
    def has_pending(self) -> bool:
        """Whether writes are buffered that a crash would lose."""
        return bool(self._pending)

    def commit(self, meta: dict[str, str] | None = None) -> None:
        """Write every buffered change (and ``meta`` rows) in one durable SQLite transaction.

        On failure the transaction is rolled back and the buffer kept, so the next commit
        retries the same writes; the caller must not acknowledge anything in between.
        """
        if not self._pending and not meta:
            return
        upserts = [(k, v) for k, v in self._pending.items() if v is not _TOMBSTONE]
        deletes = [(k,) for k, v in self._pending.items() if v is _TOMBSTONE]
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", upserts)
            conn.executemany("DELETE FROM kv WHERE key = ?", deletes)
            if meta:
                conn.executemany(
                    "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", meta.items()
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back already (a full disk)
                conn.execute("ROLLBACK")
            raise
        for key, value in self._pending.items():
            if value is _TOMBSTONE:
                self._cache.pop(key, None)
            else:
                self._remember(key, value)
        self._pending.clear()

    def discard(self) -> None:
        """Drop every buffered change: the block they made was never acknowledged."""
        self._pending.clear()

    def read_meta(self) -> dict[str, str]:
        """The committed ``meta`` rows (format version, chain id, genesis hash)."""
        rows: Iterable[tuple[str, str]] = self._conn.execute("SELECT name, value FROM meta")
        return dict(rows)

    def close(self) -> None:
        """Close the file. Buffered writes are dropped: they were never acknowledged."""
        self._pending.clear()
        self._cache.clear()
        self._conn.close()


class CommittedView(BaseDB):
    """A read-only py-evm ``DatabaseAPI`` over the committed contents of a chain file.

    * **A committed head.** :meth:`head` is one short SQLite read transaction, in which the
      reader finds the canonical head and opens the chain there: in WAL mode it sees the last
      commit made before it began, and neither it nor the writer waits for the other.
    * **Then only what cannot change.** Below the head the chain is append-only and addressed
      by hash (trie nodes, code, headers, receipts; number-to-hash lookups and the transaction
      index are written once, and the embedded chain never reorganises), so the rest of a read
      needs no snapshot held open. None is: a reader holding one for a whole EVM run would stop
      the writer's checkpoints, and then every block's commit pays for a checkpoint attempt on
      a growing WAL (measured: write p50 40 → 120 ms under four endless-loop readers).
    * **Nothing reaches the file.** The connection is opened read-only; what py-evm writes while
      it runs a call (scratch trie nodes) stays in an overlay, dropped by :meth:`scratch`.
    * **Cached only when immutable.** A value is kept across reads only if its key is its
      keccak (trie nodes, code, headers): such a pair can never change. Every other key (the
      canonical head, number-to-hash lookups) is read from the file each time.

    For one thread (a reader process has one).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None
        )
        self._overlay: dict[bytes, bytes | None] = {}
        self._cache: OrderedDict[bytes, bytes] = OrderedDict()

    @contextmanager
    def head(self) -> Iterator[None]:
        """One committed state for the reads inside the block (keep it short)."""
        self._conn.execute("BEGIN")
        try:
            yield
        finally:
            self._conn.execute("COMMIT")

    @contextmanager
    def scratch(self) -> Iterator[None]:
        """Drop, when the block ends, whatever py-evm wrote inside it."""
        try:
            yield
        finally:
            self._overlay.clear()

    def __getitem__(self, key: bytes) -> bytes:
        value, stored = _lookup(key, self._overlay, self._cache, self._conn)
        if not stored:
            return value
        cache = self._cache
        if len(key) == 32 and keccak(value) == key:
            cache[key] = value
            if len(cache) > _CACHE_ENTRIES:
                cache.popitem(last=False)
        return value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._overlay[key] = value

    def __delitem__(self, key: bytes) -> None:
        if not self._exists(key):
            raise KeyError(key)
        self._overlay[key] = _TOMBSTONE

    def _exists(self, key: bytes) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    def close(self) -> None:
        self._cache.clear()
        self._conn.close()


def _lookup(
    key: bytes, written: dict[bytes, Any], cache: OrderedDict[bytes, bytes], conn: Any
) -> tuple[bytes, bool]:
    """``key``'s value from what is written but not committed, the cache, or the file; and
    whether it came from the file (for the caller to cache). Raises KeyError if it has none."""
    if key in written:
        value = written[key]
        if value is _TOMBSTONE:
            raise KeyError(key)
        return value, False
    if key in cache:
        cache.move_to_end(key)
        return cache[key], False
    row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    if row is None:
        raise KeyError(key)
    return bytes(row[0]), True

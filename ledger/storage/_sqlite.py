"""SQLite connections for the event index: one per thread, explicit transactions, named rows.

Kept apart from the index's queries and its event application, so both read the same way:
every connection is in autocommit mode (each transaction is opened visibly, with
:meth:`Connections.write` or :meth:`Connections.read`), in WAL mode (readers run while a sync
writes), and returns :class:`sqlite3.Row` rows, so columns are read by name, never by position.

The file is ``synchronous = NORMAL``: a commit is atomic and survives a crash of the process,
and a power cut can at worst take the last commits away, never the file's consistency. That is
what a cache of the chain needs: the commits a power cut takes are read again from the chain
(whose own file is ``synchronous = FULL``) by the next sync, which every start runs before
serving. It saves the disk flush that FULL costs every write (each block a write indexes from
its receipts is one commit), which a disk shared with other work makes slow.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["Connections"]


class Connections:
    """The per-thread connections to one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._commits = 0  # write transactions committed through these connections

    def get(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with self._lock:
                if self._closed:
                    # a programming error (use after close), not a ledger condition
                    raise RuntimeError(f"the index {self.path} is closed")
                conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=30.0
                )
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA synchronous = NORMAL")  # a cache: see the module
                conn.execute("PRAGMA foreign_keys = ON")
                self._all.append(conn)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close every thread's connection. Idempotent."""
        with self._lock:
            self._closed = True
            for conn in self._all:
                conn.close()
            self._all.clear()

    @contextmanager
    def write(
        self, conn: sqlite3.Connection | None = None, *, lock: int | None = None
    ) -> Iterator[sqlite3.Connection]:
        """One write transaction (on ``conn``, else this thread's connection), taken at once
        (``IMMEDIATE``) so two writers queue instead of deadlocking; rolled back on any
        exception, including KeyboardInterrupt. ``lock`` is the PostgreSQL interface's: SQLite's
        write lock already makes every writer of the file take turns."""
        conn = self.get() if conn is None else conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        with self._lock:  # after the commit: see ``version``
            self._commits += 1

    def write_if(
        self,
        condition: tuple[str, Sequence[Any]],
        statements: Sequence[tuple[str, Sequence[Any]]],
        *,
        lock: int | None = None,
    ) -> bool:
        """Run ``statements`` (each ``(sql, params)``) in one write transaction if
        ``condition``, a query of one boolean, holds inside it; whether it held (else nothing
        changed). What a PostgreSQL store does in one round trip."""
        with self.write(lock=lock) as conn:
            if not conn.execute(*condition).fetchone()[0]:
                return False
            for sql, params in statements:
                conn.execute(sql, params)
        return True

    def version(self) -> tuple[int, int]:
        """A value that changes whenever anything commits to the file: this process's commits
        through these connections, and SQLite's ``data_version`` on this thread's connection
        (commits by any other connection, another process's included). Read it before the
        reads it vouches for: a commit in between then changes it for the next reader."""
        data_version = self.get().execute("PRAGMA data_version").fetchone()[0]
        return self._commits, data_version

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """The rows of one read-only statement (its own snapshot, or the enclosing read's):
        what a PostgreSQL store answers in one round trip (:meth:`PgConnections.query`)."""
        with self.read() as conn:
            return conn.execute(sql, params).fetchall()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """One snapshot for a query made of several statements (a page, its inputs, its total),
        so a sync committing in between cannot make them disagree."""
        conn = self.get()
        if conn.in_transaction:  # nested in an outer read: share its snapshot
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

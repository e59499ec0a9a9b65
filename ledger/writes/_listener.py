"""A dedicated PostgreSQL session outside the pool, for what a pooled connection cannot do:
``LISTEN`` for notifications between replicas, and hold a session-level advisory lock (the
sender role of :mod:`ledger.writes.shared`), which lasts exactly as long as this session.

TCP keepalives are short, so a session the network cut is noticed within seconds; a failed
session is reported by :meth:`Listener.alive` and never reused (the lock it held is gone with
it). psycopg is imported lazily, as in :mod:`ledger.storage.postgres`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

__all__ = ["Listener"]

log = logging.getLogger("provenance.writes")


class Listener:
    """One autocommit session listening on ``channel`` (connected lazily, again after a
    failure when :meth:`wait` is called)."""

    def __init__(self, url: str, channel: str, *, connect_timeout: int = 5) -> None:
        self.url = url
        self.channel = channel
        self.connect_timeout = connect_timeout
        self._conn: Any = None
        self._dead = False
        self._mutex = threading.Lock()

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=self.connect_timeout,
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=2,
        )
        conn.execute(f"LISTEN {self.channel}")
        return conn

    def _session(self) -> Any:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def alive(self) -> bool:
        """False once the session failed (its locks are gone with it)."""
        conn = self._conn
        return not self._dead and (conn is None or not (conn.closed or conn.broken))

    def try_lock(self, key: int) -> bool:
        """Take the session-level advisory lock ``key`` if it is free; held until this session
        ends. A failure marks the session dead (and raises)."""
        try:
            row = self._session().execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        except Exception:
            self._dead = True
            raise
        return bool(row[0])

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a notification on the channel; True if one came.
        With the session failed, sleeps the timeout (and marks it dead: see :meth:`alive`)."""
        import psycopg

        try:
            conn = self._session()
            for _ in conn.notifies(timeout=timeout, stop_after=1):
                return True
            return False
        except psycopg.Error as exc:
            if not self._dead:
                log.warning("the session listening on %s failed: %s", self.channel, exc)
            self._dead = True
            self._close_quietly()
            threading.Event().wait(timeout)
            return False

    def revive(self) -> None:
        """Forget a failed session; the next :meth:`wait` connects again."""
        self._close_quietly()
        self._dead = False

    def _close_quietly(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a broken session may fail to close: gone
                conn.close()

    def close(self) -> None:
        """End the session (its locks are released with it)."""
        self._close_quietly()
        self._dead = True

"""The event index in PostgreSQL, shared by every replica of the service.

The same queries as the SQLite file (:class:`ledger.index._sql.SqlIndex`), over a bounded
connection pool (:class:`ledger.storage.postgres.PgConnections`). The tables are created and
migrated by ``provenance db upgrade`` (Alembic, :mod:`ledger.storage.schema`), never by opening
the index: a replica must not change a schema behind another's back. Several replicas sync into
the same tables; each sync takes a PostgreSQL advisory lock, so they take turns, and one that
finds another got there first keeps what it applied (as two SQLite processes do).
"""

from __future__ import annotations

from ledger.index._sql import DEFAULT_CHUNK_BLOCKS, SqlIndex
from ledger.storage.postgres import PgConnections

__all__ = ["PostgresIndex"]


class PostgresIndex(SqlIndex):
    """A PostgreSQL cache of one ProvenanceLedger contract's events (an ``EventIndex``).

    ``db`` is the process's pool, shared with the other PostgreSQL stores; closing the index
    does not close it (its owner does)."""

    def __init__(self, db: PgConnections, *, chunk_blocks: int = DEFAULT_CHUNK_BLOCKS) -> None:
        super().__init__(db, chunk_blocks=chunk_blocks)
        self.path = db.path

    def close(self) -> None:
        """Nothing to release: the pool belongs to whoever opened it. Idempotent."""

    def __enter__(self) -> PostgresIndex:
        return self

"""The event index in a SQLite file: the zero-configuration default, a cache of the contract's
events for queries the chain cannot answer quickly (listings, paging, "which models were
trained on this dataset?").

The chain stays the source of truth: the file can be deleted and rebuilt from the events at any
time and gives identical answers. The queries are :class:`ledger.index._sql.SqlIndex`'s, shared
with the PostgreSQL engine (:mod:`ledger.index.postgres`); this module opens the file (WAL
mode, one connection per thread, see :mod:`ledger.storage._sqlite`) and creates its tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ledger.index import _sync
from ledger.index._sql import DEFAULT_CHUNK_BLOCKS, SqlIndex
from ledger.index._sync import Rewind
from ledger.index.base import (
    EventIndex,
    IndexedBatch,
    IndexedDataset,
    IndexedModel,
    IndexedRecord,
    IndexMismatch,
    RecordKindName,
    Registration,
    Revocation,
)
from ledger.storage._sqlite import Connections

__all__ = [
    "DEFAULT_CHUNK_BLOCKS",
    "EventIndex",
    "IndexMismatch",
    "IndexedBatch",
    "IndexedDataset",
    "IndexedModel",
    "IndexedRecord",
    "LedgerIndex",
    "RecordKindName",
    "Registration",
    "Revocation",
    "Rewind",
]


class LedgerIndex(SqlIndex):
    """A SQLite cache of one ProvenanceLedger contract's events (an :class:`EventIndex`).

    Safe to share between threads: each thread gets its own connection (WAL mode lets readers
    run while a sync writes), and syncs are serialised by a lock within the process and by
    SQLite's write lock across processes.
    """

    def __init__(self, path: Path, *, chunk_blocks: int = DEFAULT_CHUNK_BLOCKS) -> None:
        self.path = Path(path)
        db = self._connections = Connections(self.path)
        super().__init__(db, chunk_blocks=chunk_blocks)
        _sync.create_schema(db)

    def __enter__(self) -> LedgerIndex:
        return self

    def change_token(self) -> Any | None:
        """Changes with every commit to the file, this process's or another's (see
        :meth:`~ledger.storage._sqlite.Connections.version`)."""
        return self._connections.version()

"""Which engine holds each part of the service's state, from the settings: the one place that
chooses between the zero-configuration default (SQLite files and a folder under the data
directory) and the shared engines of several replicas (PostgreSQL for the index, API keys and the
deployment record; an S3-compatible object store for the artifacts).

``PROVENANCE_DATABASE_URL`` and ``PROVENANCE_ARTIFACTS_URL`` are independent: either may be set
alone. A process opens one :class:`~ledger.storage.postgres.PgConnections` pool (bounded by
``database_pool_size``) and its PostgreSQL stores share it. Opening the database checks its
schema revision first and refuses a database of another revision
(:class:`~ledger.storage.schema.SchemaMismatch`): migrating is ``provenance db upgrade``'s job.

With a database and an RPC chain the write journal and its queue are shared too
(:mod:`ledger.writes.shared`, chosen in ``api.service._opening.open_writes``: one sender per key).
With a database the receipt book is shared too
(:class:`~ledger.storage.pg_receipt_book.PgReceiptBook`): a receipt issued by one replica is
read through any, and anchored by the replica holding the sender role. Jobs of expensive work
run in the replica that accepted them; with a database, their state is shared so that any
replica answers a poll.
"""

from __future__ import annotations

from pathlib import Path

from api.jobs import JobBook
from api.keys import ApiKeys, KeyStore
from api.pg_jobs import PgJobBook
from api.pg_keys import PgKeyStore
from api.settings import Settings
from ledger.chain.deployment import RecordPlace
from ledger.index.base import EventIndex
from ledger.index.sqlite import LedgerIndex
from ledger.storage.artifacts import ArtifactStore
from ledger.storage.postgres import PgConnections, PgDeploymentRecord
from ledger.storage.receipt_book import ReceiptBook, ReceiptStore

__all__ = [
    "deployment_place",
    "open_database",
    "open_index",
    "open_job_book",
    "open_keys",
    "open_receipts",
    "open_store",
]


def open_database(settings: Settings) -> PgConnections | None:
    """The process's PostgreSQL pool, its schema checked; None without a database URL."""
    if settings.database_url is None:
        return None
    from ledger.storage.schema import check_schema

    db = PgConnections(
        settings.database_url,
        max_size=settings.database_pool_size,
        timeout=settings.database_pool_timeout,
    )
    try:
        check_schema(db)
    except BaseException:
        db.close()
        raise
    return db


def open_index(settings: Settings, db: PgConnections | None) -> EventIndex:
    if db is None:
        return LedgerIndex(settings.data_dir / "index.sqlite3")
    from ledger.index.postgres import PostgresIndex

    return PostgresIndex(db)


def open_job_book(db: PgConnections | None) -> JobBook | None:
    """Where submitted jobs are shared: the database's ``jobs`` table, or nowhere (memory)."""
    return None if db is None else PgJobBook(db)


def open_keys(settings: Settings, db: PgConnections | None) -> ApiKeys:
    if db is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return KeyStore(settings.data_dir / "keys.sqlite3")
    return PgKeyStore(db)


def open_receipts(settings: Settings, db: PgConnections | None) -> ReceiptStore:
    """The receipt book: ``receipts.sqlite3`` under the data directory, or the database's."""
    if db is None:
        return ReceiptBook(settings.data_dir / "receipts.sqlite3")
    from ledger.storage.pg_receipt_book import PgReceiptBook

    return PgReceiptBook(db)


def deployment_place(settings: Settings, db: PgConnections | None) -> Path | RecordPlace:
    """Where the deployment record lives: ``deployment.json`` or the database's row."""
    if db is None:
        return settings.data_dir / "deployment.json"
    return PgDeploymentRecord(db)


def open_store(settings: Settings) -> ArtifactStore:
    """The artifact store; with S3, the data directory's ``artifacts`` folder is its cache."""
    root = settings.data_dir / "artifacts"
    if settings.artifacts_url is None:
        return ArtifactStore(root)
    from ledger.storage.s3 import S3ArtifactStore

    return S3ArtifactStore(root, settings.artifacts_url, timeout=settings.artifacts_timeout)

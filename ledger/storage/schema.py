"""The shared PostgreSQL schema's revisions: create or migrate it (``provenance db upgrade``), and
refuse to serve from a schema of another revision.

As MLflow's tracking server does (``mlflow db upgrade``, ``_verify_schema``), migrating is a step
an operator takes, never a side effect of starting a replica: a replica that migrated at start
would change the tables under the replicas still running the previous release. So a replica
only reads the revision and, unless it is exactly the one its code was written for, refuses to
start with :class:`SchemaMismatch`, naming both revisions and the command to run.

:func:`upgrade` is safe when several processes run it at once (three replicas started together
by an orchestrator, each running the step first): it takes a transaction-scoped PostgreSQL
advisory lock, then lets Alembic migrate on the same connection in the same transaction. The
first to get the lock migrates and commits; the others then find the schema at its head and
change nothing. The migrations ship inside the package (``ledger/storage/_migrations``).
SQLAlchemy and Alembic are imported only here, only when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ledger.errors import LedgerError
from ledger.storage.postgres import PgConnections, redacted

__all__ = [
    "UPGRADE_COMMAND",
    "SchemaMismatch",
    "check_schema",
    "current_revision",
    "head",
    "upgrade",
]

MIGRATIONS = Path(__file__).resolve().parent / "_migrations"
UPGRADE_COMMAND = "provenance db upgrade"
UPGRADE_LOCK = 0x6C656467657275  # the upgrade's advisory lock ("ledgeru" in ASCII)


class SchemaMismatch(LedgerError):
    """The database's schema is not at the revision this release's code was written for."""

    def __init__(self, database: str, found: str | None, expected: str) -> None:
        where = "has no schema yet" if found is None else f"is at schema revision {found}"
        super().__init__(
            f"the database {database} {where}; this release needs revision {expected}: "
            f"run `{UPGRADE_COMMAND}` with the same PROVENANCE_DATABASE_URL "
            "(after upgrading every replica's code, if the database is ahead)",
            database=database,
            found=found,
            expected=expected,
        )
        self.found, self.expected = found, expected


def _config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head() -> str:
    """The revision this release's code reads and writes."""
    from alembic.script import ScriptDirectory

    found = ScriptDirectory.from_config(_config()).get_current_head()
    assert found is not None, "the package ships no migration"
    return found


def current_revision(db: PgConnections) -> str | None:
    """The database's revision, or None when it has no schema (no ``alembic_version``)."""
    with db.read() as conn:
        table = conn.execute("SELECT to_regclass('alembic_version') AS t").fetchone()["t"]
        if table is None:
            return None
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return None if row is None else row["version_num"]


def check_schema(db: PgConnections) -> str:
    """The database's revision, if it is this release's; else :class:`SchemaMismatch`."""
    found, expected = current_revision(db), head()
    if found != expected:
        raise SchemaMismatch(db.path, found, expected)
    return found


def upgrade(url: str, target: str = "head") -> tuple[str | None, str]:
    """Create or migrate the schema of the database at ``url`` to :func:`head` (or to the
    revision ``target``, for tests of a migration), under the upgrade's advisory lock; returns
    the revisions before and after (equal: nothing to do)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from ledger.storage.postgres import StoreUnavailable

    engine = create_engine(_sqlalchemy_url(url), poolclass=_null_pool())
    try:
        with engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK})
            before = MigrationContext.configure(connection).get_current_revision()
            config = _config()
            config.attributes["connection"] = connection
            command.upgrade(config, target)
            after = MigrationContext.configure(connection).get_current_revision()
    except OperationalError as exc:
        raise StoreUnavailable(
            f"the database {redacted(url)} is unavailable: {exc.orig}", database=redacted(url)
        ) from exc
    finally:
        engine.dispose()
    assert after is not None
    return before, after


def _sqlalchemy_url(url: str) -> str:
    """``postgresql://…`` as SQLAlchemy names psycopg 3's driver."""
    scheme, rest = url.split("://", 1)
    return f"postgresql+psycopg://{rest}" if scheme in ("postgresql", "postgres") else url


def _null_pool() -> Any:
    from sqlalchemy.pool import NullPool

    return NullPool

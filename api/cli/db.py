"""``provenance db upgrade``: create or migrate the shared PostgreSQL schema.

Run it once per release, before the replicas of that release start (several at once is safe:
they take turns on an advisory lock, and the later ones find nothing to do). A replica never
migrates by itself; it refuses a schema of another revision and names this command.
"""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli._common import CommandFailed, command, out

__all__ = ["upgrade"]


@command
def upgrade(
    database_url: Annotated[
        str | None,
        typer.Option(
            envvar="PROVENANCE_DATABASE_URL",
            help="postgresql://USER:PASSWORD@HOST:PORT/DB (default: $PROVENANCE_DATABASE_URL)",
        ),
    ] = None,
) -> None:
    """Create or migrate the schema of the shared database to this release's revision."""
    from ledger.errors import LedgerError
    from ledger.storage.postgres import is_postgres_url, redacted
    from ledger.storage.schema import upgrade as upgrade_schema

    if not is_postgres_url(database_url):
        raise CommandFailed(
            "set PROVENANCE_DATABASE_URL (or --database-url) to postgresql://USER:PASSWORD@"
            "HOST:PORT/DB: the SQLite default needs no migration"
        )
    assert database_url is not None
    try:
        before, after = upgrade_schema(database_url)
    except LedgerError as exc:
        raise CommandFailed(str(exc)) from None
    where = redacted(database_url)
    if before == after:
        out.print(f"{where} is at schema revision {after}: nothing to do")
    else:
        out.print(f"upgraded {where} from schema revision {before or '(none)'} to {after}")

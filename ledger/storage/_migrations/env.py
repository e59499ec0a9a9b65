"""Alembic's environment for the shared PostgreSQL schema (run by ``provenance db upgrade``
through :func:`ledger.storage.schema.upgrade`, never by the ``alembic`` command).

The caller hands over a connection already inside a transaction that holds the upgrade's
advisory lock, so every migration runs in that one transaction: PostgreSQL's DDL is
transactional, and a crash half-way leaves the schema as it was. Importing this file outside
Alembic does nothing (the ledger's own tests import every module).
"""

from __future__ import annotations

from alembic import context


def run_migrations() -> None:
    """Apply the pending migrations on the caller's connection."""
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


if hasattr(context, "config"):  # inside an Alembic run
    run_migrations()

"""The index's schema version 3 (``ledger/index/_sync.py``): which generation logged each event.

Each contract generation has its own AccessControl, so a REGISTRAR_ROLE change is a fact of one
generation only, and a reader asking whether a key could write to generation 1 must not count
its grants in generation 2. ``records``, ``revocations`` and ``registrar_roles`` get a
``contract`` column (the logging generation's address, lower case). Rows indexed before this
revision get it empty, and ``meta`` notes ``backfill_contracts``: the next sync fills them from
the chain's logs (as a migrated SQLite file's), and until then the index answers no role
history. Downgrading drops the columns and the note.

Revision ID: r0005
Revises: r0004
"""

from __future__ import annotations

from alembic import op

revision = "r0005"
down_revision = "r0004"
branch_labels = None
depends_on = None

_EVENT_TABLES = ("records", "revocations", "registrar_roles")


def upgrade() -> None:
    for table in _EVENT_TABLES:
        op.execute(f"ALTER TABLE {table} ADD COLUMN contract TEXT")
    op.execute(
        "INSERT INTO meta (key, value) SELECT 'backfill_contracts', '1' "
        "WHERE EXISTS (SELECT 1 FROM meta WHERE key = 'last_block')"
    )


def downgrade() -> None:
    op.execute("DELETE FROM meta WHERE key = 'backfill_contracts'")
    for table in _EVENT_TABLES:
        op.execute(f"ALTER TABLE {table} DROP COLUMN contract")

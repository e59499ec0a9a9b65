"""The write queue and the write journal of several replicas (:mod:`ledger.writes.shared`).

``write_queue`` holds every write a replica accepted, with its state (``queued`` → ``sending``
→ ``final`` or ``failed``) and its outcome (the inclusion or the error, JSON); ``dedup`` is the
record's hash for write-once records, so one record is written once whichever replicas ask.
``sender`` is one row: the fencing epoch of the replica that holds the sender role (bumped by
each new holder; a journal write of an older epoch is refused). ``tx_sent``, ``tx_marks`` are
the SQLite journal's ``sent`` and ``marks`` (``ledger/writes/_journal.py``) with PostgreSQL's
types (``seq`` keeps SQLite's rowid order).

Revision ID: r0003
Revises: r0002
"""

from __future__ import annotations

from alembic import op

revision = "r0003"
down_revision = "r0002"
branch_labels = None
depends_on = None

_QUEUE_TABLES = """
CREATE TABLE write_queue (
    id BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    item TEXT NOT NULL,
    dedup TEXT UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'final', 'failed')),
    epoch BIGINT,
    outcome TEXT,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX write_queue_open ON write_queue (state, id) WHERE state IN ('queued', 'sending');
CREATE TABLE sender (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL,
    holder TEXT NOT NULL,
    since DOUBLE PRECISION NOT NULL
);
CREATE TABLE tx_sent (
    tx_hash TEXT PRIMARY KEY,
    seq BIGSERIAL NOT NULL,
    nonce BIGINT NOT NULL,
    to_address TEXT NOT NULL,
    data TEXT NOT NULL,
    gas BIGINT NOT NULL,
    max_fee NUMERIC NOT NULL,
    priority_fee NUMERIC NOT NULL,
    raw BYTEA NOT NULL,
    keys TEXT NOT NULL
);
CREATE INDEX tx_sent_by_nonce ON tx_sent (nonce);
CREATE TABLE tx_marks (
    nonce BIGINT PRIMARY KEY,
    done BOOLEAN NOT NULL,
    block_number BIGINT,
    block_hash TEXT
)
"""


def upgrade() -> None:
    for statement in _QUEUE_TABLES.split(";"):
        op.execute(statement)


def downgrade() -> None:
    for table in ("tx_marks", "tx_sent", "sender", "write_queue"):
        op.execute(f"DROP TABLE {table}")

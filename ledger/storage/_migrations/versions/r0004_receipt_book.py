"""The receipt book of several replicas (:class:`ledger.storage.pg_receipt_book.PgReceiptBook`).

The SQLite book's tables (:mod:`ledger.storage._receipt_schema`) with PostgreSQL's types and
without what only books written before issue 26 carry (``batch_root`` and ``proof`` per
receipt): ``receipts`` (one row per receipt, ``seq`` in issue order, its canonical JSON
``body``, ``input`` and ``leaf``), ``receipt_batches`` (one row per planned batch: the range
``first_seq``..``last_seq`` of one model's receipts and their ``leaves``, 32 bytes each) and
``receipt_models`` (per model, the last receipt already planned). Named apart from the index's
``batches`` and ``models`` (r0001): one name, one definition.

Revision ID: r0004
Revises: r0003
"""

from __future__ import annotations

from alembic import op

revision = "r0004"
down_revision = "r0003"
branch_labels = None
depends_on = None

_RECEIPT_TABLES = """
CREATE TABLE receipts (
    seq BIGSERIAL PRIMARY KEY,
    receipt_id TEXT NOT NULL UNIQUE,
    model_hash TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    body TEXT NOT NULL,
    input TEXT,
    leaf TEXT NOT NULL
);
CREATE INDEX receipts_by_model ON receipts (model_hash, seq);
CREATE TABLE receipt_batches (
    root TEXT PRIMARY KEY,
    model_hash TEXT NOT NULL,
    count INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('planned', 'anchored', 'failed')),
    tx_hash TEXT,
    block_number BIGINT,
    error TEXT,
    planned_at DOUBLE PRECISION NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    leaves BYTEA NOT NULL
);
CREATE INDEX receipt_batches_range ON receipt_batches (model_hash, last_seq);
CREATE INDEX receipt_batches_planned ON receipt_batches (planned_at) WHERE state = 'planned';
CREATE TABLE receipt_models (
    model_hash TEXT PRIMARY KEY,
    planned_through BIGINT NOT NULL
)
"""


def upgrade() -> None:
    for statement in _RECEIPT_TABLES.split(";"):
        op.execute(statement)


def downgrade() -> None:
    for table in ("receipt_models", "receipt_batches", "receipts"):
        op.execute(f"DROP TABLE {table}")

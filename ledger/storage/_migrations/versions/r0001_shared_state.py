"""The shared state of several replicas: the event index, API keys, the deployment record.

The index tables are the SQLite file's (``ledger/index/_sync.py``, schema version 2) with
PostgreSQL's types: block numbers, log indexes and times as BIGINT, uint64 counts as decimal
TEXT (as in SQLite, they pass a BIGINT's range). API keys are ``api/auth.py``'s table. The
deployment is one row (``id = 1``) holding the JSON document ``deployment.json`` holds.

Revision ID: r0001
"""

from __future__ import annotations

from alembic import op

revision = "r0001"
down_revision = None
branch_labels = None
depends_on = None

_TABLES = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE records (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('dataset', 'model', 'batch')),
    registrant TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    block_number BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    registered_at BIGINT NOT NULL
);
CREATE INDEX records_by_kind ON records (kind, block_number, log_index);
CREATE TABLE datasets (
    hash TEXT PRIMARY KEY REFERENCES records (hash),
    rows_root TEXT NOT NULL,
    row_count TEXT NOT NULL,
    schema_hash TEXT NOT NULL,
    metadata_hash TEXT NOT NULL,
    transform_hash TEXT NOT NULL
);
CREATE TABLE models (
    hash TEXT PRIMARY KEY REFERENCES records (hash),
    metadata_hash TEXT NOT NULL
);
CREATE TABLE batches (
    root TEXT PRIMARY KEY REFERENCES records (hash),
    model_hash TEXT NOT NULL,
    count TEXT NOT NULL
);
CREATE INDEX batches_by_model ON batches (model_hash);
CREATE TABLE inputs (
    record_hash TEXT NOT NULL REFERENCES records (hash),
    position INTEGER NOT NULL,
    input_hash TEXT NOT NULL,
    PRIMARY KEY (record_hash, position)
);
CREATE INDEX inputs_by_input ON inputs (input_hash);
CREATE TABLE revocations (
    hash TEXT PRIMARY KEY,
    revoker TEXT NOT NULL,
    reason TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    block_number BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE TABLE registrar_roles (
    account TEXT NOT NULL,
    block_number BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    granted INTEGER NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX registrar_roles_account ON registrar_roles (account);
CREATE TABLE blocks (
    number BIGINT PRIMARY KEY,
    hash TEXT NOT NULL
);
CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE TABLE deployment (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    record TEXT NOT NULL
)
"""
_DROP = (
    "deployment",
    "api_keys",
    "blocks",
    "registrar_roles",
    "revocations",
    "inputs",
    "batches",
    "models",
    "datasets",
    "records",
    "meta",
)


def upgrade() -> None:
    for statement in _TABLES.split(";"):
        op.execute(statement)


def downgrade() -> None:
    for table in _DROP:
        op.execute(f"DROP TABLE {table}")

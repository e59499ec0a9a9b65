"""The SQLite receipt book's tables, how a book written before issue 26 is brought up to date,
and the cache of batch trees: the book's storage details, kept apart from its logic
(:mod:`ledger.storage.receipt_book`) so that each reads on its own page.

Tables: ``receipts`` (one row per receipt: ``seq``, ``receipt_id``, ``model_hash``,
``created_at``, ``body`` = its canonical JSON, ``input``, ``leaf``; ``batch_root`` and ``proof``
only for batches planned before issue 26), ``batches`` (one row per batch: root, model, count,
state, transaction, and since issue 26 the range ``first_seq``..``last_seq`` of its model's
receipts and their ``leaves``, 32 bytes each in issue order) and ``models`` (per model, the last
receipt already planned, ``planned_through``). Hashes are ``0x`` lowercase hex.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ledger.formats.merkle import LeafHashTree
from ledger.formats.receipts import Receipt, receipt_leaf_hash

__all__ = ["SCHEMA", "TreeCache", "migrate", "stored_leaf"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS receipts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    receipt_id TEXT NOT NULL UNIQUE,
    model_hash TEXT NOT NULL,
    created_at REAL NOT NULL,
    body TEXT NOT NULL,
    input TEXT,
    batch_root TEXT,
    leaf TEXT,
    proof TEXT
);
CREATE INDEX IF NOT EXISTS receipts_pending ON receipts (batch_root, model_hash, seq);
CREATE TABLE IF NOT EXISTS batches (
    root TEXT PRIMARY KEY,
    model_hash TEXT NOT NULL,
    count INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('planned', 'anchored', 'failed')),
    tx_hash TEXT,
    block_number INTEGER,
    error TEXT,
    planned_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS models (
    model_hash TEXT PRIMARY KEY,
    planned_through INTEGER NOT NULL
);
"""


def stored_leaf(body: str) -> bytes:
    """The leaf hash of a receipt stored before leaves were kept (a book written before issue
    26), from its body: the receipt's canonical JSON, written from a validated receipt."""
    return receipt_leaf_hash(Receipt.model_construct(**_leaf_fields(json.loads(body))))


def _leaf_fields(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "receipt_id": bytes.fromhex(fields["receipt_id"][2:]),
        "model_hash": bytes.fromhex(fields["model_hash"][2:]),
        "input_hash": bytes.fromhex(fields["input_hash"][2:]),
        "output_hash": bytes.fromhex(fields["output_hash"][2:]),
        "issued_at": fields["issued_at"],
        "service": fields["service"],
    }


def migrate(db: sqlite3.Connection) -> None:
    """Bring a book written before issue 26 up to date, in the opening transaction: batches
    gain their range and leaves (NULL for theirs), and every model with receipts not yet in a
    batch gets its ``models`` row."""
    columns = {column[1] for column in db.execute("PRAGMA table_info(batches)")}
    for name, kind in (("first_seq", "INTEGER"), ("last_seq", "INTEGER"), ("leaves", "BLOB")):
        if name not in columns:
            db.execute(f"ALTER TABLE batches ADD COLUMN {name} {kind}")
    db.execute("CREATE INDEX IF NOT EXISTS batches_range ON batches (model_hash, last_seq)")
    db.execute(
        "INSERT OR IGNORE INTO models (model_hash, planned_through) "
        "SELECT DISTINCT model_hash, 0 FROM receipts WHERE batch_root IS NULL"
    )


class TreeCache:
    """The trees of the last few range batches, by root (a batch's tree never changes), up to
    ``max_leaves`` leaves in all (a tree of n leaves holds 2n - 1 hashes as Python objects,
    about 150 bytes each: the default bounds the cache near 80 MB; the newest tree is always
    kept)."""

    def __init__(self, max_leaves: int = 262_144) -> None:
        self._max_leaves = max_leaves
        self._leaves = 0
        self._trees: dict[str, LeafHashTree] = {}

    def get(self, root: str) -> LeafHashTree | None:
        tree = self._trees.pop(root, None)
        if tree is not None:  # most recently used last
            self._trees[root] = tree
        return tree

    def put(self, root: str, tree: LeafHashTree) -> None:
        if root in self._trees:
            return
        self._trees[root] = tree
        self._leaves += len(tree)
        while self._leaves > self._max_leaves and len(self._trees) > 1:
            oldest = next(iter(self._trees))
            self._leaves -= len(self._trees.pop(oldest))

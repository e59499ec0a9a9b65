"""The receipt book: every receipt issued, durable before its client sees it, and its anchoring.

Why a module of its own, behind :class:`ReceiptStore`: the anchorer (:mod:`ledger.writes.anchoring`)
and the service need only the dozen operations that Protocol names, so a second engine (a
PostgreSQL book shared by several service replicas) can be added beside :class:`ReceiptBook`
without touching either flow. Everything that makes a receipt durable lives here; what to do
with a batch (send it, record it, give up on it) lives in the anchorer.

:class:`ReceiptBook` keeps the book in SQLite, in WAL mode with ``synchronous=FULL``: a write
returns only once it is on disk, so a crash or a power cut loses nothing that was acknowledged.
Any engine must keep the same states and the same guarantees (the module runs past 400 lines
because the Protocol spells each one out beside the SQLite engine that keeps them):

* :meth:`~ReceiptStore.add_issued` (and :meth:`~ReceiptStore.add`) writes a request's receipts
  all or none, durably, before returning; concurrent requests may share one commit
  (:mod:`ledger.storage._group_commit`), but none returns before the commit holding its own;
* each receipt's leaf hash is kept as the issuing path computed it, so planning a batch builds
  its tree from those hashes without reading or decoding the receipts' bodies;
* a receipt is *pending* until :meth:`~ReceiptStore.plan` gives it a batch: the batch's root and
  every member's leaf and proof are written in one transaction (state ``planned``), so a batch
  is either wholly planned or not at all, and a planned batch never changes;
* :meth:`~ReceiptStore.mark_anchored` and :meth:`~ReceiptStore.mark_failed` move a planned
  batch to ``anchored`` or ``failed``; until then :meth:`~ReceiptStore.planned` lists it, so a
  restart re-sends (or records) exactly the batches a crash interrupted.

On disk (SQLite): table ``receipts`` (``seq``, ``receipt_id``, ``model_hash``, ``created_at``,
``body`` = the receipt's canonical JSON, ``input`` = the input row's sorted compact JSON,
``leaf`` from the start (NULL in books written before issue 26: planning then hashes the body),
and ``batch_root``, ``proof`` once planned) and table ``batches`` (``root``, ``model_hash``,
``count``, ``state``, ``tx_hash``, ``block_number``, ``error``, ``planned_at``); hashes are
``0x`` lowercase hex.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ledger.formats.merkle import LeafHashTree
from ledger.formats.receipt_requests import IssuedReceipt
from ledger.formats.receipts import Receipt, receipt_leaf_hash
from ledger.storage._group_commit import GroupCommit
from ml.hashing import to_hex

__all__ = ["BatchExport", "ReceiptBook", "ReceiptStore", "StoredReceipt", "issued_receipts"]

_SCHEMA = """
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
"""


def _stored_leaf(body: str) -> bytes:
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


def issued_receipts(
    receipts: Sequence[Receipt], inputs: Sequence[Mapping[str, Any]]
) -> list[IssuedReceipt]:
    """Receipts made one by one (format 1, or any :class:`Receipt`) in the form
    :meth:`ReceiptStore.add_issued` takes."""
    return [
        IssuedReceipt(
            to_hex(r.receipt_id),
            to_hex(r.model_hash),
            receipt_leaf_hash(r),
            r.to_json(),
            json.dumps(dict(row), sort_keys=True, separators=(",", ":")),
        )
        for r, row in zip(receipts, inputs, strict=True)
    ]


def _proof_json(proof: list[bytes]) -> str:
    """``json.dumps`` of the proof's 0x-hex nodes, the stored form, written out (it is a list
    of plain hex strings, so the two are the same text)."""
    return "[" + ", ".join(f'"0x{node.hex()}"' for node in proof) + "]"


@dataclass(frozen=True)
class StoredReceipt:
    """A receipt with its anchoring state: ``pending``, ``anchored`` or ``failed``."""

    receipt: Receipt
    input: dict[str, Any] | None
    status: str
    batch_id: str | None = None
    leaf: str | None = None
    proof: tuple[str, ...] = ()
    tx_hash: str | None = None
    block_number: int | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The receipt's fields plus its anchoring, as the API and bundles show it."""
        anchored = self.status == "anchored"
        return {
            **self.receipt.json_fields(),
            "status": self.status,
            "batch_id": self.batch_id if anchored else None,
            "root": self.batch_id if anchored else None,
            "leaf": self.leaf if anchored else None,
            "proof": list(self.proof) if anchored else None,
            "tx_hash": self.tx_hash,
            "block_number": self.block_number,
            "error": self.error,
        }


@runtime_checkable
class ReceiptStore(Protocol):
    """What the anchorer and the service need of a receipt book, and nothing more.

    Hashes and roots are ``0x`` lowercase hex strings. See the module docstring for the states
    and the durability every implementation must keep.
    """

    def add(self, receipts: Sequence[Receipt], inputs: Sequence[Mapping[str, Any]]) -> None:
        """Write receipts (with the input row of each) durably, all or none."""
        ...

    def add_issued(self, items: Sequence[IssuedReceipt]) -> None:
        """Write receipts as the issuing path made them (body, input and leaf computed once),
        durably, all or none; concurrent calls may share one commit, and each returns only
        once its own receipts are durable."""
        ...

    def get(self, receipt_id: str) -> StoredReceipt | None:
        """One receipt and its anchoring, or None if it was never issued here."""
        ...

    def counts(self) -> dict[str, int]:
        """How many receipts are ``pending``, ``anchored`` and ``failed``."""
        ...

    def pending_count(self) -> int:
        """How many receipts are in no batch yet."""
        ...

    def oldest_pending_at(self) -> float | None:
        """When (Unix time) the oldest receipt in no batch was added, or None."""
        ...

    def plan(self, batch_size: int) -> list[str]:
        """Put every pending receipt in a planned batch of at most ``batch_size``, one model
        per batch, in issue order; return the new batches' roots."""
        ...

    def planned(self) -> list[tuple[str, str, int]]:
        """Batches planned and not yet anchored or failed: ``(root, model_hash, count)``,
        oldest first."""
        ...

    def mark_anchored(self, root: str, tx_hash: str, block_number: int) -> None:
        """Record that the chain holds the batch ``root``."""
        ...

    def mark_failed(self, root: str, error: str) -> None:
        """Record that the batch ``root`` will never be anchored, and why."""
        ...

    def close(self) -> None:
        """Release the storage; the book is unusable afterwards."""
        ...


@runtime_checkable
class BatchExport(Protocol):
    """A whole batch's receipts, for an auditor: kept apart from :class:`ReceiptStore`, which
    is what anchoring needs, so that an engine may offer one without the other."""

    def batch_count(self, root: str) -> int | None:
        """How many receipts the batch ``root`` holds, or None if no such batch was planned."""
        ...

    def batch_documents(self, root: str, offset: int, limit: int) -> list[dict[str, Any]]:
        """The batch's receipts in issue order, from ``offset``, at most ``limit``, each as
        :meth:`StoredReceipt.to_json` shows it."""
        ...


class ReceiptBook:
    """The receipt book in one SQLite file (a :class:`ReceiptStore` and a
    :class:`BatchExport`); safe across threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._commits: GroupCommit[IssuedReceipt] = GroupCommit(self._insert)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def add(self, receipts: Sequence[Receipt], inputs: Sequence[Mapping[str, Any]]) -> None:
        """Write receipts durably, all or none; returns once they are on disk."""
        self.add_issued(issued_receipts(receipts, inputs))

    def add_issued(self, items: Sequence[IssuedReceipt]) -> None:
        """Write receipts durably, all or none (grouped with concurrent calls); returns once
        they are on disk."""
        self._commits.submit(items)

    def _insert(self, items: Sequence[IssuedReceipt]) -> None:
        now = time.time()
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO receipts (receipt_id, model_hash, created_at, body, input, leaf) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(i.receipt_id, i.model_hash, now, i.body, i.input, to_hex(i.leaf)) for i in items],
            )

    def get(self, receipt_id: str) -> StoredReceipt | None:
        with self._lock:
            row = self._db.execute(
                "SELECT r.body, r.input, r.batch_root, r.leaf, r.proof, b.state, b.tx_hash, "
                "b.block_number, b.error FROM receipts r LEFT JOIN batches b "
                "ON b.root = r.batch_root WHERE r.receipt_id = ?",
                (receipt_id.lower(),),
            ).fetchone()
        if row is None:
            return None
        body, input_json, root, leaf, proof, state, tx_hash, block, error = row
        return StoredReceipt(
            receipt=Receipt.model_validate_json(body),
            input=json.loads(input_json) if input_json else None,
            status={"anchored": "anchored", "failed": "failed"}.get(state, "pending"),
            batch_id=root,
            leaf=leaf,
            proof=tuple(json.loads(proof)) if proof else (),
            tx_hash=tx_hash,
            block_number=block,
            error=error,
        )

    def batch_count(self, root: str) -> int | None:
        with self._lock:
            row = self._db.execute(
                "SELECT count FROM batches WHERE root = ?", (root.lower(),)
            ).fetchone()
        return None if row is None else row[0]

    def batch_documents(self, root: str, offset: int, limit: int) -> list[dict[str, Any]]:
        """Read straight from the stored canonical bodies (no model per receipt): an export
        of a hundred thousand receipts is a few JSON loads per row."""
        with self._lock:
            batch = self._db.execute(
                "SELECT state, tx_hash, block_number, error, model_hash FROM batches "
                "WHERE root = ?",
                (root.lower(),),
            ).fetchone()
            if batch is None:
                return []
            # (batch_root, model_hash) walks the receipts_pending index in seq order: no sort
            rows = self._db.execute(
                "SELECT body, leaf, proof FROM receipts WHERE batch_root = ? AND model_hash = ? "
                "ORDER BY seq LIMIT ? OFFSET ?",
                (root.lower(), batch[4], limit, offset),
            ).fetchall()
        state, tx_hash, block_number, error, _ = batch
        status = {"anchored": "anchored", "failed": "failed"}.get(state, "pending")
        anchored = status == "anchored"
        documents = []
        for body, leaf, proof in rows:
            document = json.loads(body)
            document.update(
                status=status,
                batch_id=root.lower() if anchored else None,
                root=root.lower() if anchored else None,
                leaf=leaf if anchored else None,
                proof=json.loads(proof) if anchored else None,
                tx_hash=tx_hash,
                block_number=block_number,
                error=error,
            )
            documents.append(document)
        return documents

    def pending_count(self) -> int:
        with self._lock:
            return self._db.execute(
                "SELECT COUNT(*) FROM receipts WHERE batch_root IS NULL"
            ).fetchone()[0]

    def oldest_pending_at(self) -> float | None:
        with self._lock:
            return self._db.execute(
                "SELECT MIN(created_at) FROM receipts WHERE batch_root IS NULL"
            ).fetchone()[0]

    def plan(self, batch_size: int) -> list[str]:
        """Group pending receipts into planned batches (one model each); return their roots."""
        with self._lock:
            models = [
                m
                for (m,) in self._db.execute(
                    "SELECT DISTINCT model_hash FROM receipts WHERE batch_root IS NULL"
                )
            ]
        return [root for model in models for root in self._plan_model(model, batch_size)]

    def _plan_model(self, model_hash: str, batch_size: int) -> list[str]:
        roots = []
        while True:
            with self._lock:
                # The leaves the issuing path computed; a body only where none was kept.
                rows = self._db.execute(
                    "SELECT receipt_id, leaf, CASE WHEN leaf IS NULL THEN body END FROM receipts "
                    "WHERE batch_root IS NULL AND model_hash = ? ORDER BY seq LIMIT ?",
                    (model_hash, batch_size),
                ).fetchall()
            if not rows:
                return roots
            leaves = [
                bytes.fromhex(leaf[2:]) if leaf is not None else _stored_leaf(body)
                for _, leaf, body in rows
            ]
            tree = LeafHashTree(leaves)
            root = to_hex(tree.root)
            updates = [
                (root, to_hex(leaves[i]), _proof_json(tree.proof(i)), receipt_id)
                for i, (receipt_id, _, _) in enumerate(rows)
            ]
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO batches (root, model_hash, count, state, planned_at) "
                    "VALUES (?, ?, ?, 'planned', ?)",
                    (root, model_hash, len(rows), time.time()),
                )
                db.executemany(
                    "UPDATE receipts SET batch_root = ?, leaf = ?, proof = ? "
                    "WHERE receipt_id = ? AND batch_root IS NULL",
                    updates,
                )
            roots.append(root)

    def planned(self) -> list[tuple[str, str, int]]:
        """Batches planned but not yet known to be anchored: (root, model_hash, count)."""
        with self._lock:
            return self._db.execute(
                "SELECT root, model_hash, count FROM batches WHERE state = 'planned' "
                "ORDER BY planned_at"
            ).fetchall()

    def mark_anchored(self, root: str, tx_hash: str, block_number: int) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE batches SET state = 'anchored', tx_hash = ?, block_number = ?, "
                "error = NULL WHERE root = ?",
                (tx_hash, block_number, root),
            )

    def mark_failed(self, root: str, error: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE batches SET state = 'failed', error = ? WHERE root = ?", (error, root)
            )

    def counts(self) -> dict[str, int]:
        """How many receipts are pending, anchored and failed."""
        with self._lock:
            rows = self._db.execute(
                "SELECT COALESCE(b.state, 'pending'), COUNT(*) FROM receipts r "
                "LEFT JOIN batches b ON b.root = r.batch_root GROUP BY 1"
            ).fetchall()
        counts = {"pending": 0, "anchored": 0, "failed": 0}
        for state, n in rows:
            counts["pending" if state == "planned" else state] += n
        return counts

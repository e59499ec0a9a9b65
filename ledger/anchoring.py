"""Durable prediction receipts and their anchoring in Merkle batches.

A receipt is written to the receipt book (SQLite, WAL, ``synchronous=FULL``) before the client
sees it, so a receipt a client holds is never lost. The :class:`Anchorer` thread groups pending
receipts by model, builds a StandardMerkleTree over their leaves and anchors its root with one
``anchorPredictions`` transaction, when ``batch_size`` are pending or the oldest has waited
``interval`` seconds, whichever comes first.

A batch is first *planned* (its root, and each receipt's leaf and proof, written in one SQLite
transaction), then sent, then marked *anchored*. After a crash between the two, start-up asks the
chain whether the planned root is anchored, and either records it or sends it again: nothing is
anchored twice and nothing is left behind.

A batch is marked *failed* only when the chain refuses it for good (its model was revoked or is
unknown) and does not hold it already. A refusal that may pass (this key lost its role, a
transaction got no receipt in time, the node is away) keeps the batch planned, and the thread
retries it after a pause.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.client import LedgerClient
from ledger.errors import (
    AlreadyRegistered,
    BatchAlreadyAnchored,
    ChainUnavailable,
    InvalidRecord,
    LedgerError,
    RecordRevoked,
    UnknownBatch,
    UnknownRecord,
)
from ledger.merkle import StandardMerkleTree
from ledger.receipts import RECEIPT_LEAF_ENCODING, Receipt, receipt_leaf

__all__ = ["AnchorResult", "Anchorer", "ReceiptBook", "StoredReceipt"]

log = logging.getLogger("provenance.anchoring")

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
            **json.loads(self.receipt.to_json()),
            "status": self.status,
            "batch_id": self.batch_id if anchored else None,
            "root": self.batch_id if anchored else None,
            "leaf": self.leaf if anchored else None,
            "proof": list(self.proof) if anchored else None,
            "tx_hash": self.tx_hash,
            "block_number": self.block_number,
            "error": self.error,
        }


@dataclass(frozen=True)
class AnchorResult:
    """What one attempt at a batch did: ``state`` is ``anchored``, ``failed`` (for good) or
    ``planned`` (refused for now; retried later), with the ``error`` when it is not anchored."""

    root: str
    model_hash: str
    count: int
    tx_hash: str | None
    block_number: int | None
    error: str | None = None
    state: str = "anchored"


class ReceiptBook:
    """The durable record of every receipt issued and how it was anchored."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

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
        now = time.time()
        rows = [
            (
                "0x" + r.receipt_id.hex(),
                "0x" + r.model_hash.hex(),
                now,
                r.to_json(),
                json.dumps(dict(row), sort_keys=True, separators=(",", ":")),
            )
            for r, row in zip(receipts, inputs, strict=True)
        ]
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO receipts (receipt_id, model_hash, created_at, body, input) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
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
                rows = self._db.execute(
                    "SELECT receipt_id, body FROM receipts WHERE batch_root IS NULL "
                    "AND model_hash = ? ORDER BY seq LIMIT ?",
                    (model_hash, batch_size),
                ).fetchall()
            if not rows:
                return roots
            receipts = [Receipt.model_validate_json(body) for _, body in rows]
            tree = StandardMerkleTree.of(
                [receipt_leaf(r) for r in receipts], list(RECEIPT_LEAF_ENCODING)
            )
            root = "0x" + tree.root.hex()
            updates = [
                (
                    root,
                    "0x" + tree.leaf_hash_at(i).hex(),
                    json.dumps(["0x" + p.hex() for p in tree.proof(i)]),
                    receipt_id,
                )
                for i, (receipt_id, _) in enumerate(rows)
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


class Anchorer:
    """Anchors pending receipts in the background; :meth:`flush` anchors them right now."""

    def __init__(
        self, book: ReceiptBook, client: LedgerClient, *, batch_size: int, interval: float
    ) -> None:
        self.book, self.client = book, client
        self.batch_size, self.interval = batch_size, interval
        self._wake = threading.Condition()
        self._stopping = False
        self._flush_lock = threading.Lock()
        self._retry_at = 0.0  # time.monotonic() before which the thread does not retry
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="anchorer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def notify(self) -> None:
        """New receipts arrived: re-check whether a batch is due."""
        with self._wake:
            self._wake.notify_all()

    def _due_in(self) -> float:
        """Seconds until a batch is due (0: now)."""
        retry_in = self._retry_at - time.monotonic()
        if retry_in > 0:
            return retry_in
        if self.book.pending_count() >= self.batch_size or self.book.planned():
            return 0.0
        oldest = self.book.oldest_pending_at()
        if oldest is None:
            return self.interval
        return max(0.0, oldest + self.interval - time.time())

    def _run(self) -> None:
        while True:
            with self._wake:
                if self._stopping:
                    return
                delay = self._due_in()
                if delay > 0:
                    self._wake.wait(timeout=delay)
                    continue
            try:
                results = self.flush()
            except ChainUnavailable as exc:
                log.warning("anchoring postponed: %s", exc)
                self._back_off()
            except Exception:
                log.exception("anchoring failed")
                self._back_off()
            else:
                if any(r.state == "planned" for r in results):
                    self._back_off()  # refused for now: do not hammer the chain

    def _back_off(self) -> None:
        """Wait a while before the next attempt, whatever new receipts arrive meanwhile."""
        self._retry_at = time.monotonic() + min(self.interval, 5.0)

    def flush(self) -> list[AnchorResult]:
        """Plan every pending receipt into batches and anchor every planned batch."""
        with self._flush_lock:
            self.book.plan(self.batch_size)
            return [self._anchor(*batch) for batch in self.book.planned()]

    def _anchor(self, root: str, model_hash: str, count: int) -> AnchorResult:
        try:
            tx = self.client.anchor_predictions(model_hash, root, count)
        except BatchAlreadyAnchored:
            # Sent before a crash, or by a previous attempt: record what the chain says.
            return self._record_existing(root, model_hash, count)
        except ChainUnavailable:
            raise
        except (RecordRevoked, UnknownRecord, InvalidRecord, AlreadyRegistered) as exc:
            # Refused for good (e.g. its model was revoked meanwhile), unless the batch was sent
            # before a crash and the model revoked only since: then the chain holds it.
            try:
                return self._record_existing(root, model_hash, count)
            except UnknownBatch:
                pass
            log.error("batch %s cannot be anchored: %s", root, exc)
            self.book.mark_failed(root, str(exc))
            return AnchorResult(root, model_hash, count, None, None, str(exc), "failed")
        except LedgerError as exc:
            # Refused for now (this key lost its role, no receipt in time): keep it planned.
            log.warning("batch %s not anchored yet, will retry: %s", root, exc)
            return AnchorResult(root, model_hash, count, None, None, str(exc), "planned")
        self.book.mark_anchored(root, tx.tx_hash, tx.block_number)
        return AnchorResult(root, model_hash, count, tx.tx_hash, tx.block_number)

    def _record_existing(self, root: str, model_hash: str, count: int) -> AnchorResult:
        """Record a batch the chain already holds; raises :class:`UnknownBatch` if it does not."""
        event = self.client.batch_anchoring(root)
        if event.model_hash != model_hash or event.count != count:
            error = (
                f"root {root} is anchored on chain for model {event.model_hash} with "
                f"{event.count} receipt(s), not for {model_hash} with {count}"
            )
            log.error("batch %s cannot be anchored: %s", root, error)
            self.book.mark_failed(root, error)
            return AnchorResult(root, model_hash, count, None, None, error, "failed")
        self.book.mark_anchored(root, event.tx_hash, event.block_number)
        return AnchorResult(root, model_hash, count, event.tx_hash, event.block_number)

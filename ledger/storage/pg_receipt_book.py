"""The receipt book in PostgreSQL, shared by every replica of the service.

Why: a receipt is signed by whichever replica serves the prediction, and its client may ask any
replica for it, its bundle or its batch; and the batch is anchored by the replica that holds the
sender role (:mod:`ledger.writes.shared`), which must see every replica's receipts. So the book
lives where the replicas' other shared state lives, with the same states and guarantees as the
SQLite :class:`~ledger.storage.receipt_book.ReceiptBook` (its module docstring lists them), and
one conformance suite checks both (``tests/ledger/test_anchoring.py``).

* **Durable before the answer**: a request's receipts are one transaction, committed (with
  PostgreSQL's default ``synchronous_commit``: flushed to its WAL) before
  :meth:`add_issued` returns; concurrent requests of one replica share a commit through the
  same :class:`~ledger.storage._group_commit.GroupCommit` as the SQLite book.
* **Batches are ranges**: a planned batch is one ``receipt_batches`` row, the range
  ``first_seq``..``last_seq`` of one model's receipts with their leaves; ``receipt_models``
  says up to which receipt each model is planned. Nothing is written per receipt.
* **No receipt is skipped by a range** although several replicas insert at once: ``seq`` comes
  from a sequence, and a transaction holding ``seq`` 10 may commit after another's 11. So an
  insert holds the book's advisory lock *shared* until it commits, and planning takes it
  *exclusive*: planning then sees every insert that took a number before it, and an insert after
  it takes a higher number. Two planners (a sender role changing hands) take turns the same way
  and each re-reads ``planned_through``, so no receipt is planned twice.

The pool is the process's :class:`~ledger.storage.postgres.PgConnections`, shared with the
other PostgreSQL stores; when the server is away every call raises
:class:`~ledger.storage.postgres.StoreUnavailable` (503 ``store-unavailable``), having written
nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ledger.formats.merkle import LeafHashTree
from ledger.formats.receipt_requests import IssuedReceipt
from ledger.formats.receipts import Receipt
from ledger.storage._group_commit import GroupCommit
from ledger.storage._receipt_schema import TreeCache
from ledger.storage.postgres import PgConnection, PgConnections
from ledger.storage.receipt_book import StoredReceipt, issued_receipts
from ml.hashing import to_hex

__all__ = ["RECEIPTS_LOCK", "PgReceiptBook"]

RECEIPTS_LOCK = 0x6C6564676572725F  # the book's advisory lock ("ledgerr_" in ASCII)

_STATUS = {"anchored": "anchored", "failed": "failed"}  # else (planned, no batch): pending


class PgReceiptBook:
    """The receipt book in a shared PostgreSQL database (a
    :class:`~ledger.storage.receipt_book.ReceiptStore` and a
    :class:`~ledger.storage.receipt_book.BatchExport`); safe across threads and replicas."""

    def __init__(self, db: PgConnections) -> None:
        self._db = db
        self.path = db.path  # what messages name
        self._commits: GroupCommit[IssuedReceipt] = GroupCommit(self._insert)
        self._trees = TreeCache()

    def close(self) -> None:
        """Nothing to release: the pool is the process's, closed by whoever opened it."""

    # -- issuing ---------------------------------------------------------------------------------

    def add(self, receipts: Sequence[Receipt], inputs: Sequence[Mapping[str, Any]]) -> None:
        """Write receipts durably, all or none; returns once they are committed."""
        self.add_issued(issued_receipts(receipts, inputs))

    def add_issued(self, items: Sequence[IssuedReceipt]) -> None:
        """Write receipts durably, all or none (grouped with this replica's concurrent calls);
        returns once they are committed."""
        self._commits.submit(items)

    def _insert(self, items: Sequence[IssuedReceipt]) -> None:
        now = time.time()
        with self._db.write() as db:
            db.execute("SELECT pg_advisory_xact_lock_shared(?)", (RECEIPTS_LOCK,))
            db.raw.cursor().executemany(
                "INSERT INTO receipts (receipt_id, model_hash, created_at, body, input, leaf) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                [(i.receipt_id, i.model_hash, now, i.body, i.input, to_hex(i.leaf)) for i in items],
            )
            db.raw.cursor().executemany(
                "INSERT INTO receipt_models (model_hash, planned_through) VALUES (%s, 0) "
                "ON CONFLICT (model_hash) DO NOTHING",
                [(model,) for model in sorted({i.model_hash for i in items})],
            )

    # -- reading ---------------------------------------------------------------------------------

    def get(self, receipt_id: str) -> StoredReceipt | None:
        """The receipt, its batch and its position in the batch in one query (the tree is
        cached): a read through any replica costs one round trip and its transaction's. The
        position is the count of the batch's receipts before it (``seq`` is shared by every
        model and may have gaps: the numbers of a rolled-back insert)."""
        with self._db.read() as db:
            row = db.execute(
                "SELECT r.body, r.input, r.leaf, b.root, b.state, b.tx_hash, b.block_number, "
                "b.error, (SELECT COUNT(*) FROM receipts p WHERE p.model_hash = r.model_hash "
                "AND p.seq >= b.first_seq AND p.seq < r.seq) AS position "
                "FROM receipts r LEFT JOIN LATERAL "
                "(SELECT * FROM receipt_batches WHERE model_hash = r.model_hash "
                "AND last_seq >= r.seq ORDER BY last_seq LIMIT 1) b ON b.first_seq <= r.seq "
                "WHERE r.receipt_id = ?",
                (receipt_id.lower(),),
            ).fetchone()
            if row is None:
                return None
            root = row["root"]
            tree = None if root is None else self._tree(db, root)
        return StoredReceipt(
            receipt=Receipt.model_validate_json(row["body"]),
            input=json.loads(row["input"]) if row["input"] else None,
            status="pending" if root is None else _STATUS.get(row["state"], "pending"),
            batch_id=root,
            leaf=row["leaf"],
            proof=() if tree is None else tuple(to_hex(n) for n in tree.proof(row["position"])),
            tx_hash=row["tx_hash"],
            block_number=row["block_number"],
            error=row["error"],
        )

    def _tree(self, db: PgConnection, root: str) -> LeafHashTree:
        """The batch's tree from its stored leaves (cached: a planned batch never changes)."""
        tree = self._trees.get(root)
        if tree is None:
            leaves = bytes(
                db.execute("SELECT leaves FROM receipt_batches WHERE root = ?", (root,)).fetchone()[
                    "leaves"
                ]
            )
            tree = LeafHashTree([leaves[k : k + 32] for k in range(0, len(leaves), 32)])
            self._trees.put(root, tree)
        return tree

    def batch_count(self, root: str) -> int | None:
        with self._db.read() as db:
            row = db.execute(
                "SELECT count FROM receipt_batches WHERE root = ?", (root.lower(),)
            ).fetchone()
        return None if row is None else row["count"]

    def batch_documents(self, root: str, offset: int, limit: int) -> list[dict[str, Any]]:
        """Read straight from the stored canonical bodies, as the SQLite book does."""
        root = root.lower()
        with self._db.read() as db:
            batch = db.execute(
                "SELECT state, tx_hash, block_number, error, model_hash, first_seq, last_seq "
                "FROM receipt_batches WHERE root = ?",
                (root,),
            ).fetchone()
            if batch is None:
                return []
            rows = db.execute(
                "SELECT body, leaf FROM receipts WHERE model_hash = ? AND seq BETWEEN ? AND ? "
                "ORDER BY seq LIMIT ? OFFSET ?",
                (batch["model_hash"], batch["first_seq"], batch["last_seq"], limit, offset),
            ).fetchall()
            anchored = batch["state"] == "anchored"
            tree = self._tree(db, root) if anchored else None
        documents = []
        for k, row in enumerate(rows):
            document = json.loads(row["body"])
            document.update(
                status=_STATUS.get(batch["state"], "pending"),
                batch_id=root if anchored else None,
                root=root if anchored else None,
                leaf=row["leaf"] if anchored else None,
                proof=[to_hex(node) for node in tree.proof(offset + k)] if tree else None,
                tx_hash=batch["tx_hash"],
                block_number=batch["block_number"],
                error=batch["error"],
            )
            documents.append(document)
        return documents

    def counts(self) -> dict[str, int]:
        with self._db.read() as db:
            total = db.execute("SELECT COUNT(*) AS n FROM receipts").fetchone()["n"]
            rows = db.execute(
                "SELECT state, SUM(count) AS n FROM receipt_batches GROUP BY state"
            ).fetchall()
        counts = {"pending": 0, "anchored": 0, "failed": 0}
        for row in rows:
            counts["pending" if row["state"] == "planned" else row["state"]] += int(row["n"])
        counts["pending"] += total - sum(counts.values())
        return counts

    def pending_count(self) -> int:
        with self._db.read() as db:
            return int(
                db.execute(
                    "SELECT COUNT(*) AS n FROM receipt_models m JOIN receipts r "
                    "ON r.model_hash = m.model_hash AND r.seq > m.planned_through"
                ).fetchone()["n"]
            )

    def oldest_pending_at(self) -> float | None:
        with self._db.read() as db:
            return db.execute(
                "SELECT MIN(first.created_at) AS t FROM receipt_models m CROSS JOIN LATERAL "
                "(SELECT created_at FROM receipts r WHERE r.model_hash = m.model_hash "
                "AND r.seq > m.planned_through ORDER BY r.seq LIMIT 1) first"
            ).fetchone()["t"]

    # -- anchoring -------------------------------------------------------------------------------

    def plan(self, batch_size: int) -> list[str]:
        """Group pending receipts into planned batches (one model each); return their roots."""
        with self._db.read() as db:
            models = [r["model_hash"] for r in db.execute("SELECT model_hash FROM receipt_models")]
        return [root for model in models for root in self._plan_model(model, batch_size)]

    def _plan_model(self, model_hash: str, batch_size: int) -> list[str]:
        roots = []
        while True:
            with self._db.write(lock=RECEIPTS_LOCK) as db:  # after every insert numbered before
                through = db.execute(
                    "SELECT planned_through FROM receipt_models WHERE model_hash = ?",
                    (model_hash,),
                ).fetchone()["planned_through"]
                rows = db.execute(
                    "SELECT seq, leaf FROM receipts WHERE model_hash = ? AND seq > ? "
                    "ORDER BY seq LIMIT ?",
                    (model_hash, through, batch_size),
                ).fetchall()
                if not rows:
                    return roots
                leaves = [bytes.fromhex(row["leaf"][2:]) for row in rows]
                tree = LeafHashTree(leaves)
                root = to_hex(tree.root)
                first, last = rows[0]["seq"], rows[-1]["seq"]
                db.execute(
                    "INSERT INTO receipt_batches (root, model_hash, count, state, planned_at, "
                    "first_seq, last_seq, leaves) VALUES (?, ?, ?, 'planned', ?, ?, ?, ?)",
                    (root, model_hash, len(rows), time.time(), first, last, b"".join(leaves)),
                )
                db.execute(
                    "UPDATE receipt_models SET planned_through = ? WHERE model_hash = ?",
                    (last, model_hash),
                )
            self._trees.put(root, tree)
            roots.append(root)

    def planned(self) -> list[tuple[str, str, int]]:
        with self._db.read() as db:
            rows = db.execute(
                "SELECT root, model_hash, count FROM receipt_batches WHERE state = 'planned' "
                "ORDER BY planned_at"
            ).fetchall()
        return [(r["root"], r["model_hash"], r["count"]) for r in rows]

    def mark_anchored(self, root: str, tx_hash: str, block_number: int) -> None:
        with self._db.write() as db:
            db.execute(
                "UPDATE receipt_batches SET state = 'anchored', tx_hash = ?, block_number = ?, "
                "error = NULL WHERE root = ?",
                (tx_hash, block_number, root),
            )

    def mark_failed(self, root: str, error: str) -> None:
        with self._db.write() as db:
            db.execute(
                "UPDATE receipt_batches SET state = 'failed', error = ? WHERE root = ?",
                (error, root),
            )

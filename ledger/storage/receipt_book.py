"""The receipt book: every receipt issued, durable before its client sees it, and its anchoring.

Why a module of its own, behind :class:`ReceiptStore`: the anchorer (:mod:`ledger.writes.anchoring`)
and the service need only the dozen operations that Protocol names, so the second engine
(:mod:`ledger.storage.pg_receipt_book`, shared by several service replicas) sits beside
:class:`ReceiptBook` without touching either flow. Everything that makes a receipt durable
lives here; what to do with a batch (send it, record it, give up on it) lives in the anchorer.

:class:`ReceiptBook` keeps the book in SQLite, in WAL mode with ``synchronous=FULL``: a write
returns only once it is on disk, so a crash or a power cut loses nothing that was acknowledged.
Any engine must keep the same states and the same guarantees (the module runs past 400 lines
because the Protocol spells each one out beside the SQLite engine that keeps them):

* :meth:`~ReceiptStore.add_issued` (and :meth:`~ReceiptStore.add`) writes a request's receipts
  all or none, durably, before returning; concurrent requests may share one commit
  (:mod:`ledger.storage._group_commit`), but none returns before the commit holding its own;
* each receipt's leaf hash is kept as the issuing path computed it, so planning a batch builds
  its tree from those hashes without reading or decoding the receipts' bodies;
* a receipt is *pending* until :meth:`~ReceiptStore.plan` gives it a batch: the batch, its
  root and its members' leaves are written in one transaction (state ``planned``), so a batch
  is either wholly planned or not at all, and a planned batch never changes; planning reads
  each receipt's leaf once and writes nothing per receipt (a proof is read from the batch's
  tree when asked for);
* :meth:`~ReceiptStore.mark_anchored` and :meth:`~ReceiptStore.mark_failed` move a planned
  batch to ``anchored`` or ``failed``; until then :meth:`~ReceiptStore.planned` lists it, so a
  restart re-sends (or records) exactly the batches a crash interrupted.

On disk (SQLite): the tables of :mod:`ledger.storage._receipt_schema`, which also brings a book
written before issue 26 up to date when it is opened.
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
from ledger.storage._receipt_schema import SCHEMA, TreeCache, migrate, stored_leaf
from ledger.storage.multirow import multi_row_inserts
from ml.hashing import to_hex

__all__ = ["BatchExport", "ReceiptBook", "ReceiptStore", "StoredReceipt", "issued_receipts"]


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


_INSERT_RECEIPTS = (
    "INSERT INTO receipts (receipt_id, model_hash, created_at, body, input, leaf) VALUES "
)


class ReceiptBook:
    """The receipt book in one SQLite file (a :class:`ReceiptStore` and a
    :class:`BatchExport`); safe across threads.

    A batch planned here is a range of one model's receipts in issue order (``first_seq`` to
    ``last_seq``) with its leaves, in the ``batches`` row: planning writes one row per batch
    and nothing per receipt, and a receipt's proof is read from its batch's tree (built from
    those leaves, cached). ``models`` says, per model, up to which receipt everything is
    planned. Batches planned before issue 26 named their receipts one by one (``batch_root``,
    ``proof`` in each receipt's row) and still read that way.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        with self._transaction() as db:
            migrate(db)
        self._commits: GroupCommit[IssuedReceipt] = GroupCommit(self._insert)
        self._trees = TreeCache()

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
        """One transaction; the rows go in by multi-row statements (:mod:`ledger.storage.multirow`:
        the serving benchmark's service CPU per receipt went from 54 and 57 to 52 and 52 us in
        two pairs, BENCHMARKS.md)."""
        now = time.time()
        rows = [(i.receipt_id, i.model_hash, now, i.body, i.input, to_hex(i.leaf)) for i in items]
        with self._transaction() as db:
            for statement, values in multi_row_inserts(
                _INSERT_RECEIPTS, "(?, ?, ?, ?, ?, ?)", rows
            ):
                db.execute(statement, values)
            db.executemany(
                "INSERT OR IGNORE INTO models (model_hash, planned_through) VALUES (?, 0)",
                [(model,) for model in {i.model_hash for i in items}],
            )

    def get(self, receipt_id: str) -> StoredReceipt | None:
        with self._lock:
            row = self._db.execute(
                "SELECT seq, model_hash, body, input, batch_root, leaf, proof FROM receipts "
                "WHERE receipt_id = ?",
                (receipt_id.lower(),),
            ).fetchone()
            if row is None:
                return None
            seq, model_hash, body, input_json, root, leaf, proof = row
            if root is not None:  # planned before issue 26: the row names its batch
                batch = self._db.execute(
                    "SELECT state, tx_hash, block_number, error FROM batches WHERE root = ?",
                    (root,),
                ).fetchone() or (None, None, None, None)
                proof_nodes = tuple(json.loads(proof)) if proof else ()
            else:
                found = self._db.execute(
                    "SELECT root, state, tx_hash, block_number, error, first_seq FROM batches "
                    "WHERE model_hash = ? AND last_seq >= ? ORDER BY last_seq LIMIT 1",
                    (model_hash, seq),
                ).fetchone()
                if found is None or found[5] > seq:
                    batch, proof_nodes = (None, None, None, None), ()
                else:
                    root, batch = found[0], found[1:5]
                    proof_nodes = self._proof(root, seq)
        state, tx_hash, block, error = batch
        return StoredReceipt(
            receipt=Receipt.model_validate_json(body),
            input=json.loads(input_json) if input_json else None,
            status={"anchored": "anchored", "failed": "failed"}.get(state, "pending"),
            batch_id=root,
            leaf=leaf,
            proof=proof_nodes,
            tx_hash=tx_hash,
            block_number=block,
            error=error,
        )

    def _proof(self, root: str, seq: int) -> tuple[str, ...]:
        """The proof of receipt ``seq`` in the range batch ``root`` (the lock is held)."""
        model_hash, first, _ = self._range(root)
        position = self._db.execute(
            "SELECT COUNT(*) FROM receipts WHERE batch_root IS NULL AND model_hash = ? "
            "AND seq >= ? AND seq < ?",
            (model_hash, first, seq),
        ).fetchone()[0]
        return tuple(to_hex(node) for node in self._tree(root).proof(position))

    def _range(self, root: str) -> tuple[str, int, int]:
        return self._db.execute(
            "SELECT model_hash, first_seq, last_seq FROM batches WHERE root = ?", (root,)
        ).fetchone()

    def _tree(self, root: str) -> LeafHashTree:
        """The tree of a range batch, from its stored leaves (cached: immutable once planned)."""
        tree = self._trees.get(root)
        if tree is None:
            (leaves,) = self._db.execute(
                "SELECT leaves FROM batches WHERE root = ?", (root,)
            ).fetchone()
            tree = LeafHashTree([leaves[k : k + 32] for k in range(0, len(leaves), 32)])
            self._trees.put(root, tree)
        return tree

    def batch_count(self, root: str) -> int | None:
        with self._lock:
            row = self._db.execute(
                "SELECT count FROM batches WHERE root = ?", (root.lower(),)
            ).fetchone()
        return None if row is None else row[0]

    def batch_documents(self, root: str, offset: int, limit: int) -> list[dict[str, Any]]:
        """Read straight from the stored canonical bodies (no model per receipt): an export
        of a hundred thousand receipts is a few JSON loads per row."""
        root = root.lower()
        with self._lock:
            batch = self._db.execute(
                "SELECT state, tx_hash, block_number, error, model_hash, first_seq, last_seq "
                "FROM batches WHERE root = ?",
                (root,),
            ).fetchone()
            if batch is None:
                return []
            state, tx_hash, block_number, error, model_hash, first, last = batch
            anchored = state == "anchored"
            if first is None:  # planned before issue 26: each row names its batch
                # (batch_root, model_hash) walks the receipts_pending index in seq order
                rows = self._db.execute(
                    "SELECT body, leaf, proof FROM receipts WHERE batch_root = ? "
                    "AND model_hash = ? ORDER BY seq LIMIT ? OFFSET ?",
                    (root, model_hash, limit, offset),
                ).fetchall()
                proofs = [json.loads(proof) if anchored else None for _, _, proof in rows]
            else:
                rows = self._db.execute(
                    "SELECT body, leaf, NULL FROM receipts WHERE batch_root IS NULL "
                    "AND model_hash = ? AND seq BETWEEN ? AND ? ORDER BY seq LIMIT ? OFFSET ?",
                    (model_hash, first, last, limit, offset),
                ).fetchall()
                tree = self._tree(root) if anchored else None
                proofs = [
                    [to_hex(node) for node in tree.proof(offset + k)] if tree else None
                    for k in range(len(rows))
                ]
        status = {"anchored": "anchored", "failed": "failed"}.get(state, "pending")
        documents = []
        for (body, leaf, _), proof in zip(rows, proofs, strict=True):
            document = json.loads(body)
            document.update(
                status=status,
                batch_id=root if anchored else None,
                root=root if anchored else None,
                leaf=leaf if anchored else None,
                proof=proof,
                tx_hash=tx_hash,
                block_number=block_number,
                error=error,
            )
            documents.append(document)
        return documents

    def _pending_ranges(self) -> list[tuple[str, int]]:
        """Each model with receipts, and the last receipt already planned for it."""
        return self._db.execute("SELECT model_hash, planned_through FROM models").fetchall()

    def pending_count(self) -> int:
        with self._lock:
            return sum(
                self._db.execute(
                    "SELECT COUNT(*) FROM receipts WHERE batch_root IS NULL AND model_hash = ? "
                    "AND seq > ?",
                    (model, through),
                ).fetchone()[0]
                for model, through in self._pending_ranges()
            )

    def oldest_pending_at(self) -> float | None:
        with self._lock:
            times = [
                row[0]
                for model, through in self._pending_ranges()
                if (
                    row := self._db.execute(
                        "SELECT created_at FROM receipts WHERE batch_root IS NULL "
                        "AND model_hash = ? AND seq > ? ORDER BY seq LIMIT 1",
                        (model, through),
                    ).fetchone()
                )
                is not None
            ]
        return min(times, default=None)

    def plan(self, batch_size: int) -> list[str]:
        """Group pending receipts into planned batches (one model each); return their roots."""
        with self._lock:
            models = self._pending_ranges()
        return [root for model, _ in models for root in self._plan_model(model, batch_size)]

    def _plan_model(self, model_hash: str, batch_size: int) -> list[str]:
        roots = []
        while True:
            with self._transaction() as db:
                (through,) = db.execute(
                    "SELECT planned_through FROM models WHERE model_hash = ?", (model_hash,)
                ).fetchone()
                planned = _next_batch(db, model_hash, through, batch_size)
                if planned is None:
                    return roots
                first, last, leaves = planned
                tree = LeafHashTree(leaves)
                root = to_hex(tree.root)
                db.execute(
                    "INSERT INTO batches (root, model_hash, count, state, planned_at, first_seq, "
                    "last_seq, leaves) VALUES (?, ?, ?, 'planned', ?, ?, ?, ?)",
                    (root, model_hash, len(leaves), time.time(), first, last, b"".join(leaves)),
                )
                db.execute(
                    "UPDATE models SET planned_through = ? WHERE model_hash = ?",
                    (last, model_hash),
                )
                self._trees.put(root, tree)
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
            (total,) = self._db.execute("SELECT COUNT(*) FROM receipts").fetchone()
            rows = self._db.execute(
                "SELECT state, SUM(count) FROM batches GROUP BY state"
            ).fetchall()
        counts = {"pending": 0, "anchored": 0, "failed": 0}
        for state, n in rows:
            counts["pending" if state == "planned" else state] += n
        counts["pending"] += total - sum(counts.values())
        return counts


# The next batch's receipts: their range and count, and their seqs and leaves concatenated in
# one row. From a subquery with LIMIT, which SQLite does not flatten into the aggregate, so it
# hands the rows over in its ORDER BY; the caller checks that order all the same.
_NEXT_BATCH = (
    "SELECT count(*), count(leaf), group_concat(seq), group_concat(substr(leaf, 3), '') "
    "FROM (SELECT seq, leaf FROM receipts WHERE batch_root IS NULL AND model_hash = ? "
    "AND seq > ? ORDER BY seq LIMIT ?)"
)


def _next_batch(
    db: sqlite3.Connection, model_hash: str, through: int, batch_size: int
) -> tuple[int, int, list[bytes]] | None:
    """The next batch's ``(first seq, last seq, leaves)``, or None if no receipt is pending;
    read in one step of SQLite, else (a receipt of an older book that kept no leaf, rows not
    in issue order, or more than SQLite's longest string) row by row.

    Why one step: a query gives up the GIL at every row it steps over, and under a serving
    load each hand-off to a request thread costs more than reading the row; planning a round
    of 17 batches of 1,024 receipts stepped 17,408 times, holding the book's lock throughout
    (which the request threads' writes wait for)."""
    try:
        count, with_leaf, seqs, hexes = db.execute(
            _NEXT_BATCH, (model_hash, through, batch_size)
        ).fetchone()
    except sqlite3.DataError:  # longer than SQLite's longest string (a batch of millions)
        return _leaves_row_by_row(db, model_hash, through, batch_size)
    if count == 0:
        return None
    if with_leaf != count:
        return _leaves_row_by_row(db, model_hash, through, batch_size)
    numbers = list(map(int, seqs.split(",")))
    if numbers != sorted(set(numbers)):  # not in strictly increasing seq order
        return _leaves_row_by_row(db, model_hash, through, batch_size)
    joined = bytes.fromhex(hexes)
    return numbers[0], numbers[-1], [joined[k : k + 32] for k in range(0, len(joined), 32)]


def _leaves_row_by_row(
    db: sqlite3.Connection, model_hash: str, through: int, batch_size: int
) -> tuple[int, int, list[bytes]] | None:
    """The next batch's ``(first seq, last seq, leaves)``, or None if no receipt is pending:
    the leaves the issuing path computed, and a leaf made from the body (and kept) where an
    older book kept none."""
    rows = db.execute(
        "SELECT seq, leaf, CASE WHEN leaf IS NULL THEN body END FROM receipts "
        "WHERE batch_root IS NULL AND model_hash = ? AND seq > ? ORDER BY seq LIMIT ?",
        (model_hash, through, batch_size),
    ).fetchall()
    if not rows:
        return None
    leaves = [
        bytes.fromhex(leaf[2:]) if leaf is not None else stored_leaf(body) for _, leaf, body in rows
    ]
    db.executemany(  # rows of an older book, which kept no leaf
        "UPDATE receipts SET leaf = ? WHERE seq = ?",
        [(to_hex(leaves[k]), row[0]) for k, row in enumerate(rows) if row[1] is None],
    )
    return rows[0][0], rows[-1][0], leaves

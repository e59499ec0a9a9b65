"""Planning a batch builds its tree from the leaves the issuing path stored, touching each
receipt once: no body is read back or decoded, except for receipts written before leaves were
kept (an older book), whose leaves are then computed from their bodies, to the same tree."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ledger.formats.merkle import StandardMerkleTree, verify_proof
from ledger.formats.receipt_signing import ReceiptSigner
from ledger.formats.receipts import RECEIPT_LEAF_ENCODING, ReceiptDomain, receipt_leaf
from ledger.storage import receipt_book
from ledger.storage.receipt_book import ReceiptBook
from ml.hashing import to_hex

SIGNER = ReceiptSigner(b"\x05" * 32, ReceiptDomain(1, "0x" + "22" * 20))
MODEL = b"\x03" * 32


def _request(n: int, k: int = 0) -> object:
    return SIGNER.sign_request(
        model_hash=MODEL, input_hashes=[bytes([k, i]) * 16 for i in range(n)], outputs=[1.0] * n
    )


def test_planning_decodes_no_body(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    book = ReceiptBook(tmp_path / "book.sqlite3")
    requests = [_request(7, k) for k in range(3)]
    for signed in requests:
        book.add_issued(signed.issued(["{}"] * 7))  # type: ignore[attr-defined]

    def no_decoding(body: str) -> bytes:
        raise AssertionError("a body was decoded to plan a batch")

    monkeypatch.setattr(receipt_book, "stored_leaf", no_decoding)
    [root] = book.plan(100)
    book.mark_anchored(root, "0x" + "00" * 32, 1)  # proofs are shown once anchored
    receipts = [r for signed in requests for r in signed.receipts()]  # type: ignore[attr-defined]
    expected = StandardMerkleTree.of([receipt_leaf(r) for r in receipts], RECEIPT_LEAF_ENCODING)
    assert root == "0x" + expected.root.hex()
    for receipt in receipts:
        stored = book.get("0x" + receipt.receipt_id.hex())
        assert stored is not None and stored.batch_id == root
        assert verify_proof(root, stored.leaf, list(stored.proof))
    documents = book.batch_documents(root, 5, 7)
    assert [d["receipt_id"] for d in documents] == [to_hex(r.receipt_id) for r in receipts[5:12]]
    assert all(verify_proof(root, d["leaf"], d["proof"]) for d in documents)
    assert book.counts() == {"pending": 0, "anchored": 21, "failed": 0}
    book.close()


def test_receipts_of_an_older_book_without_leaves_plan_to_the_same_tree(tmp_path: Path) -> None:
    path = tmp_path / "book.sqlite3"
    book = ReceiptBook(path)
    receipts = [
        SIGNER.sign(model_hash=MODEL, input_hash=bytes([i]) * 32, output=i) for i in range(5)
    ]
    book.add(receipts[:2], [{"i": i} for i in range(2)])
    with sqlite3.connect(path, isolation_level=None) as db:  # written as before issue 26
        db.executemany(
            "INSERT INTO receipts (receipt_id, model_hash, created_at, body, input) "
            "VALUES (?, ?, 0, ?, '{}')",
            [("0x" + r.receipt_id.hex(), "0x" + MODEL.hex(), r.to_json()) for r in receipts[2:]],
        )
    db.close()
    [root] = book.plan(100)
    expected = StandardMerkleTree.of([receipt_leaf(r) for r in receipts], RECEIPT_LEAF_ENCODING)
    assert root == "0x" + expected.root.hex()
    for i, receipt in enumerate(receipts):
        stored = book.get("0x" + receipt.receipt_id.hex())
        assert stored is not None and stored.leaf == "0x" + expected.leaf_hash_at(i).hex()
    book.close()


_OLD_SCHEMA = """
CREATE TABLE receipts (seq INTEGER PRIMARY KEY AUTOINCREMENT, receipt_id TEXT NOT NULL UNIQUE,
    model_hash TEXT NOT NULL, created_at REAL NOT NULL, body TEXT NOT NULL, input TEXT,
    batch_root TEXT, leaf TEXT, proof TEXT);
CREATE INDEX receipts_pending ON receipts (batch_root, model_hash, seq);
CREATE TABLE batches (root TEXT PRIMARY KEY, model_hash TEXT NOT NULL, count INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('planned', 'anchored', 'failed')), tx_hash TEXT,
    block_number INTEGER, error TEXT, planned_at REAL NOT NULL);
"""


def test_a_book_written_before_issue_26_reads_and_plans_on(tmp_path: Path) -> None:
    """An anchored batch whose rows name it (the old layout) keeps its proofs; the book's
    pending receipts and new ones are planned as ranges after it."""
    path = tmp_path / "old.sqlite3"
    old = [SIGNER.sign(model_hash=MODEL, input_hash=bytes([i]) * 32, output=i) for i in range(3)]
    tree = StandardMerkleTree.of([receipt_leaf(r) for r in old], RECEIPT_LEAF_ENCODING)
    root, model = to_hex(tree.root), to_hex(MODEL)
    with sqlite3.connect(path, isolation_level=None) as db:
        db.executescript(_OLD_SCHEMA)
        db.execute(
            "INSERT INTO batches VALUES (?, ?, 3, 'anchored', ?, 7, NULL, 0)", (root, model, root)
        )
        for i, r in enumerate(old):
            proof = json.dumps([to_hex(n) for n in tree.proof(i)])
            leaf = to_hex(tree.leaf_hash_at(i))
            db.execute(
                "INSERT INTO receipts (receipt_id, model_hash, created_at, body, input, "
                "batch_root, leaf, proof) VALUES (?, ?, 0, ?, '{}', ?, ?, ?)",
                (to_hex(r.receipt_id), model, r.to_json(), root, leaf, proof),
            )
        pending = SIGNER.sign(model_hash=MODEL, input_hash=bytes(32), output=9)
        db.execute(
            "INSERT INTO receipts (receipt_id, model_hash, created_at, body, input) "
            "VALUES (?, ?, 0, ?, '{}')",
            (to_hex(pending.receipt_id), model, pending.to_json()),
        )
    db.close()
    book = ReceiptBook(path)
    assert book.counts() == {"pending": 1, "anchored": 3, "failed": 0}
    for r in old:
        stored = book.get(to_hex(r.receipt_id))
        assert stored is not None and stored.status == "anchored" and stored.batch_id == root
        assert verify_proof(root, stored.leaf, list(stored.proof))
    assert [d["receipt_id"] for d in book.batch_documents(root, 0, 10)] == [
        to_hex(r.receipt_id) for r in old
    ]
    signed = _request(2)
    book.add_issued(signed.issued(["{}"] * 2))  # type: ignore[attr-defined]
    [new_root] = book.plan(100)
    book.mark_anchored(new_root, "0x" + "00" * 32, 8)
    newer = [pending, *signed.receipts()]  # type: ignore[attr-defined]
    for r in newer:
        stored = book.get(to_hex(r.receipt_id))
        assert stored is not None and stored.batch_id == new_root and stored.status == "anchored"
        assert verify_proof(new_root, stored.leaf, list(stored.proof))
    assert book.counts() == {"pending": 0, "anchored": 6, "failed": 0}
    assert book.get(to_hex(old[0].receipt_id)).batch_id == root  # type: ignore[union-attr]
    book.close()


def test_the_tree_cache_is_bounded_by_leaves_and_keeps_the_newest() -> None:
    from ledger.formats.merkle import LeafHashTree
    from ledger.storage._receipt_schema import TreeCache

    def tree(n: int) -> LeafHashTree:
        return LeafHashTree([bytes([k]) * 32 for k in range(n)])

    cache = TreeCache(max_leaves=10)
    cache.put("a", tree(4))
    cache.put("b", tree(4))
    assert cache.get("a") is not None  # used: now the most recent
    cache.put("c", tree(4))
    assert cache.get("b") is None and cache.get("a") is not None
    cache.put("d", tree(20))  # larger than the bound alone: kept, all others go
    assert cache.get("d") is not None and cache.get("a") is None and cache.get("c") is None


def test_a_write_longer_than_one_statement_keeps_every_row_in_order_all_or_none(
    tmp_path: Path,
) -> None:
    """The book inserts up to 128 rows a statement: 300 receipts span three statements, keep
    their order (a batch is a range of issue order), and a duplicate id in the last statement
    leaves nothing of the write behind."""
    book = ReceiptBook(tmp_path / "book.sqlite3")

    def request(n: int, k: int) -> Any:
        hashes = [(k * 1000 + i).to_bytes(32, "big") for i in range(n)]
        return SIGNER.sign_request(model_hash=MODEL, input_hashes=hashes, outputs=[1.0] * n)

    signed = request(300, 0)
    items = signed.issued([f'{{"row":{i}}}' for i in range(300)])
    book.add_issued(items)
    with sqlite3.connect(book.path) as db:
        stored = db.execute("SELECT receipt_id, input, leaf FROM receipts ORDER BY seq").fetchall()
    assert stored == [(i.receipt_id, i.input, to_hex(i.leaf)) for i in items]
    [root] = book.plan(1000)
    leaves = [receipt_leaf(r) for r in signed.receipts()]
    assert root == to_hex(StandardMerkleTree.of(leaves, RECEIPT_LEAF_ENCODING).root)

    again = request(200, 1).issued(["{}"] * 200)
    with pytest.raises(sqlite3.IntegrityError):
        book.add_issued([*again[:199], items[0]])  # the 200th repeats a stored id
    assert book.counts() == {"pending": 300, "anchored": 0, "failed": 0}
    book.close()


def test_planning_reads_a_batch_in_one_step_and_falls_back_on_any_other_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's leaves come in one row of SQLite (no GIL hand-off a receipt); should they
    ever come out of issue order, the row-by-row read plans the batch instead."""
    book = ReceiptBook(tmp_path / "book.sqlite3")

    def add(ks: range) -> list[bytes]:
        requests = [_request(7, k) for k in ks]
        for signed in requests:
            book.add_issued(signed.issued(["{}"] * 7))  # type: ignore[attr-defined]
        return [receipt_leaf(r) for signed in requests for r in signed.receipts()]  # type: ignore[attr-defined]

    def roots_of(leaves: list[bytes], size: int) -> list[str]:
        return [
            to_hex(StandardMerkleTree.of(leaves[k : k + size], RECEIPT_LEAF_ENCODING).root)
            for k in range(0, len(leaves), size)
        ]

    def row_by_row(*args: object) -> None:
        raise AssertionError("read row by row")

    leaves = add(range(3))
    with monkeypatch.context() as patch:
        patch.setattr(receipt_book, "_leaves_row_by_row", row_by_row)
        assert book.plan(10) == roots_of(leaves, 10)

    leaves = add(range(3, 5))
    reversed_order = receipt_book._NEXT_BATCH.replace("ORDER BY seq", "ORDER BY seq DESC")
    monkeypatch.setattr(receipt_book, "_NEXT_BATCH", reversed_order)
    assert book.plan(10) == roots_of(leaves, 10)
    book.close()


def test_a_batch_longer_than_sqlites_longest_string_is_planned_row_by_row(tmp_path: Path) -> None:
    book = ReceiptBook(tmp_path / "book.sqlite3")
    signed = _request(7)
    book.add_issued(signed.issued(["{}"] * 7))  # type: ignore[attr-defined]
    book._db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 400)  # 7 leaves are 448 hex digits
    leaves = [receipt_leaf(r) for r in signed.receipts()]  # type: ignore[attr-defined]
    assert book.plan(10) == [to_hex(StandardMerkleTree.of(leaves, RECEIPT_LEAF_ENCODING).root)]
    book.close()

"""Planning a batch builds its tree from the leaves the issuing path stored, touching each
receipt once: no body is read back or decoded, except for receipts written before leaves were
kept (an older book), whose leaves are then computed from their bodies, to the same tree."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ledger.formats.merkle import StandardMerkleTree, verify_proof
from ledger.formats.receipt_signing import ReceiptSigner
from ledger.formats.receipts import RECEIPT_LEAF_ENCODING, ReceiptDomain, receipt_leaf
from ledger.storage import receipt_book
from ledger.storage.receipt_book import ReceiptBook

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

    monkeypatch.setattr(receipt_book, "_stored_leaf", no_decoding)
    [root] = book.plan(100)
    receipts = [r for signed in requests for r in signed.receipts()]  # type: ignore[attr-defined]
    expected = StandardMerkleTree.of([receipt_leaf(r) for r in receipts], RECEIPT_LEAF_ENCODING)
    assert root == "0x" + expected.root.hex()
    for receipt in receipts:
        stored = book.get("0x" + receipt.receipt_id.hex())
        assert stored is not None and stored.batch_id == root
        assert verify_proof(root, stored.leaf, list(stored.proof))
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

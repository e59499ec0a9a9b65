"""Bulk verification (embedded chain and anvil): a batch of receipts at one snapshot, each
chain fact read once, every tamper found on exactly its own check, reports in the order given.

The acceptance case: a batch of 10,000 receipts (500 on anvil) with three tampered ones finds
exactly those three invalid, each on its named check.
"""

from __future__ import annotations

import json
from typing import Any

from eth_account import Account

from ledger.formats.merkle import StandardMerkleTree
from ledger.formats.receipt_signing import ReceiptSigner
from ledger.formats.receipts import RECEIPT_LEAF_ENCODING, Receipt, input_hash, receipt_leaf
from ledger.verify import (
    Anchoring,
    ReceiptEvidence,
    count_verdicts,
    verify_documents,
    verify_receipt,
    verify_receipts,
)
from tests.ledger._world import World, world

__all__ = ["world"]  # the fixture, from tests.ledger._world


def _batch(world: World, receipts: list[Receipt]) -> list[dict[str, Any]]:
    """Anchor ``receipts`` as one batch; their documents as GET /v1/receipts/{id} shows them."""
    tree = StandardMerkleTree.of([receipt_leaf(r) for r in receipts], list(RECEIPT_LEAF_ENCODING))
    root = "0x" + tree.root.hex()
    tx = world.client.anchor_predictions(world.model, root, len(receipts))
    return [
        {
            **json.loads(r.to_json()),
            "status": "anchored",
            "batch_id": root,
            "root": root,
            "leaf": "0x" + tree.leaf_hash_at(i).hex(),
            "proof": ["0x" + p.hex() for p in tree.proof(i)],
            "tx_hash": tx.tx_hash,
            "block_number": tx.block_number,
            "error": None,
        }
        for i, r in enumerate(receipts)
    ]


def test_a_batch_with_three_tampered_receipts_finds_exactly_those(world: World) -> None:
    size = 10_000 if world.deployed.chain.name == "embedded" else 500
    registered = world.registered_at(world.model)
    sign = world.signer.sign
    receipts = [
        sign(model_hash=world.model, input_hash=input_hash({"i": i}), output=float(i))
        for i in range(size)
    ]
    intruder = ReceiptSigner(Account.create().key, world.domain)  # same domain, no role
    forged, unauthorized, back_dated = 123, size // 2, size - 1
    receipts[unauthorized] = intruder.sign(
        model_hash=world.model, input_hash=input_hash({"i": unauthorized}), output=1.0
    )
    receipts[back_dated] = sign(
        model_hash=world.model,
        input_hash=input_hash({"i": back_dated}),
        output=2.0,
        issued_at=registered - 3600,
    )
    documents = _batch(world, receipts)
    documents[forged]["output"] = 1e9  # altered after anchoring

    reports = verify_documents(documents, world.facts())
    assert len(reports) == size
    assert count_verdicts(reports) == {"valid": size - 3, "invalid": 3, "pending": 0}
    failed = {i: r.failed for i, r in enumerate(reports) if r.verdict == "invalid"}
    assert failed == {
        forged: ["output_hash"],
        unauthorized: ["signer_authorized"],
        back_dated: ["issued_after_model"],
    }
    assert [r.subject for r in reports] == [d["receipt_id"] for d in documents]


def test_bulk_and_single_verification_agree(world: World) -> None:
    receipts = world.issue([{"x1": i, "x2": 1} for i in range(6)])
    world.anchor()
    pending = world.issue([{"x1": 50, "x2": 1}])
    items = [ReceiptEvidence(r, world.anchoring(r)) for r in receipts + pending]
    items[2] = ReceiptEvidence(
        items[2].receipt.model_copy(update={"output": -1.0}), items[2].anchoring
    )
    stale = items[4].anchoring
    assert stale is not None
    items[4] = ReceiptEvidence(items[4].receipt, Anchoring(stale.batch_id, stale.leaf, ()))
    bulk = verify_receipts(items, world.facts(), store=world.store)
    single = [
        verify_receipt(i.receipt, world.client, anchoring=i.anchoring, store=world.store)
        for i in items
    ]
    assert [b.to_json() for b in bulk] == [s.to_json() for s in single]
    assert [b.verdict for b in bulk] == ["valid", "valid", "invalid", "valid", "invalid", "valid",
                                         "pending"]  # fmt: skip


def test_a_malformed_document_is_an_invalid_report_in_its_place(world: World) -> None:
    [receipt, *_] = world.issue()
    world.anchor()
    stored = world.book.get("0x" + receipt.receipt_id.hex())
    assert stored is not None
    good = stored.to_json()
    documents: list[Any] = [good, {**good, "signature": "0x12"}, "not a receipt", good]
    reports = verify_documents(documents, world.facts())
    assert [r.verdict for r in reports] == ["valid", "invalid", "invalid", "valid"]
    assert reports[1].failed == ["receipt_format"] and reports[1].subject == good["receipt_id"]
    assert reports[2].subject == "#2" and "JSON object" in reports[2].checks[0].detail

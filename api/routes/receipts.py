"""Prediction receipts: their anchoring state, evidence bundles, and forced anchoring."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import HashPath, ServiceDep

router = APIRouter(tags=["receipts"])


@router.get("/receipts/{receipt_id}")
def get_receipt(service: ServiceDep, receipt_id: HashPath) -> dict:
    """A receipt with its anchoring: ``pending``, or ``anchored`` with batch, leaf and proof."""
    return service.receipt(receipt_id.lower()).to_json()


@router.post("/anchor")
def anchor_now(service: ServiceDep) -> dict:
    """Anchor every pending receipt now instead of waiting for the batch size or interval."""
    results = service.anchorer.flush()
    service.sync()  # so lineage and revocation see the new batches at once
    return {
        "batches": [
            {
                "batch_id": r.root,
                "model_hash": r.model_hash,
                "count": r.count,
                "state": r.state,
                "tx_hash": r.tx_hash,
                "block_number": r.block_number,
                "error": r.error,
            }
            for r in results
        ],
        "receipts": service.receipts.counts(),
    }

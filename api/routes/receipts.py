"""Prediction receipts: their anchoring state, evidence bundles, and forced anchoring."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import HashPath, ReadAccess, RegistrarAccess, ServiceDep
from api.schemas import AnchorPublic, BundlePublic, ReceiptPublic

router = APIRouter(tags=["receipts"])


@router.get("/receipts/{receipt_id}", response_model=ReceiptPublic)
def get_receipt(service: ServiceDep, _: ReadAccess, receipt_id: HashPath) -> ReceiptPublic:
    """A receipt with its anchoring: ``pending``, or ``anchored`` with batch, leaf and proof."""
    return service.receipts.get(receipt_id)


@router.get("/receipts/{receipt_id}/bundle", response_model=BundlePublic)
def get_bundle(service: ServiceDep, _: ReadAccess, receipt_id: HashPath) -> BundlePublic:
    """One self-contained JSON an auditor can archive: receipt, proof, the chain coordinates of
    its whole lineage, the PROV-JSON lineage and the verification report."""
    return service.receipts.bundle(receipt_id)


@router.post("/anchor", response_model=AnchorPublic)
def anchor_now(service: ServiceDep, _: RegistrarAccess) -> AnchorPublic:
    """Anchor every pending receipt now instead of waiting for the batch size or interval."""
    return service.receipts.anchor_now()

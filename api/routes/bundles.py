"""Evidence bundles of receipts."""

from __future__ import annotations

from fastapi import APIRouter

from api.bundle import make_bundle
from api.deps import HashPath, ServiceDep

router = APIRouter(tags=["receipts"])


@router.get("/receipts/{receipt_id}/bundle")
def get_bundle(service: ServiceDep, receipt_id: HashPath) -> dict:
    """One self-contained JSON an auditor can archive: receipt, proof, the chain coordinates of
    its whole lineage, the PROV-JSON lineage and the verification report."""
    return make_bundle(service, receipt_id.lower())

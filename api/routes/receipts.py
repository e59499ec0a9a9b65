"""Prediction receipts: their anchoring state, evidence bundles, and forced anchoring."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import HashPath, ReadAccess, RegistrarAccess, ServiceDep, WaitQuery, answer_accepted
from api.schemas import AnchorPublic, BundlePublic, ReceiptPublic
from api.schemas.accepted import AnchorAcceptedPublic

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


@router.post(
    "/anchor",
    response_model=AnchorPublic,
    responses={
        202: {"model": AnchorAcceptedPublic, "description": "durably queued (wait=accepted)"}
    },
)
def anchor_now(
    service: ServiceDep, _: RegistrarAccess, wait: WaitQuery = "final"
) -> AnchorPublic | JSONResponse:
    """Anchor every pending receipt now instead of waiting for the batch size or interval.
    ``wait=included`` answers once the batches are in a block (state ``included``; the receipts
    show their anchoring once final); ``wait=accepted`` once they are planned and queued (202,
    each batch with a URL to poll)."""
    answer = service.receipts.anchor_now(wait=wait)
    if isinstance(answer, AnchorAcceptedPublic):
        return answer_accepted(answer)
    return answer

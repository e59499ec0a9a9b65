"""``/receipts/{id}``: a receipt's signed fields, its anchoring, and the verifier, which runs in
the auditor's browser on the receipt's evidence bundle as soon as the page opens."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.console._common import page_hash, service_of
from api.console._render import json_text, render
from api.deps import ReadAccess

__all__ = ["router"]

router = APIRouter()


@router.get("/receipts/{receipt_id}", response_class=HTMLResponse)
def receipt_page(request: Request, receipt_id: str, _: ReadAccess) -> HTMLResponse:
    service = service_of(request)
    page = service.browse.receipt(page_hash(receipt_id, "receipt id"))
    receipt_id = page.receipt.receipt_id
    verifier = {
        "document": json_text(page.receipt.model_dump(mode="json")),
        "input": "",
        "rpc_url": "",
        "contract": service.admin.chain().contract_address,
        "bundle_url": f"/v1/receipts/{receipt_id}/bundle",
        "auto": True,
    }
    return render(
        request,
        "receipt.html",
        {"page": page, "verifier": verifier, "service_report": None, "service_report_note": None},
    )

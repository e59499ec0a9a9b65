"""``/verify``: paste or drop a receipt or an evidence bundle and verify it.

With JavaScript the page verifies in the browser (``verify.js``, against the node the auditor
names) and shows the service's report beside its own. Without it, the form is posted here and
the service answers with its report: the page works either way. ``GET /verify?receipt=ID``
verifies a receipt this service issued, so that a report has a link.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse

from api.console._common import page_hash, service_of
from api.console._render import json_text, render
from api.deps import ReadAccess
from api.schemas import ReportPublic
from ledger.formats.receipts import ReceiptError

__all__ = ["router"]

router = APIRouter()

MAX_DOCUMENT_CHARS = 1_000_000  # a bundle is a few kB; the body limit applies before this


def _page(
    request: Request,
    *,
    document: str = "",
    input_text: str = "",
    rpc_url: str = "",
    contract: str | None = None,
    report: ReportPublic | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    service = service_of(request)
    verifier = {
        "document": document,
        "input": input_text,
        "rpc_url": rpc_url,
        "contract": contract or service.admin.chain().contract_address,
        "bundle_url": None,
        "auto": False,
    }
    context: dict[str, Any] = {
        "verifier": verifier,
        "service_report": report,
        "service_report_note": None,
        "form_error": error,
    }
    return render(request, "verify.html", context, status=status)


@router.get("/verify", response_class=HTMLResponse)
def verify_page(
    request: Request,
    _: ReadAccess,
    receipt: Annotated[str | None, Query(max_length=80)] = None,
) -> HTMLResponse:
    if receipt is None:
        return _page(request)
    service = service_of(request)
    stored = service.receipts.stored(page_hash(receipt, "receipt id"))
    document = stored.to_json()
    report = service.verify.receipt(document, input_row=stored.input)
    input_text = "" if stored.input is None else json_text(stored.input, None)
    return _page(request, document=json_text(document), input_text=input_text, report=report)


@router.post("/verify", response_class=HTMLResponse)
def verify_form(
    request: Request,
    _: ReadAccess,
    document: Annotated[str, Form(max_length=MAX_DOCUMENT_CHARS)],
    input: Annotated[str, Form(max_length=MAX_DOCUMENT_CHARS)] = "",
    rpc_url: Annotated[str, Form(max_length=2_000)] = "",
    contract: Annotated[str, Form(max_length=100)] = "",
) -> HTMLResponse:
    """The service's report on a pasted receipt or bundle (the form without JavaScript)."""
    again = {"document": document, "input_text": input, "rpc_url": rpc_url}
    try:
        parsed = json.loads(document)
        row = json.loads(input) if input.strip() else None
    except ValueError as exc:
        return _page(request, **again, error=f"not JSON: {exc}", status=422)
    receipt = parsed.get("receipt", parsed) if isinstance(parsed, dict) else None
    if not isinstance(receipt, dict):
        return _page(request, **again, error="not a receipt: it holds no JSON object", status=422)
    if row is None and isinstance(parsed, dict) and isinstance(parsed.get("input"), dict):
        row = parsed["input"]
    if row is not None and not isinstance(row, dict):
        return _page(request, **again, error="the input row must be a JSON object", status=422)
    try:
        report = service_of(request).verify.receipt(receipt, input_row=row)
    except ReceiptError as exc:
        return _page(request, **again, error=str(exc), status=422)
    return _page(request, **again, contract=contract or None, report=report)

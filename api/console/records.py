"""``/datasets/{hash}``, ``/models/{hash}``, ``/batches/{id}``: a page for every record.

Each shows every field of the record with its on-chain coordinates, links to what it was made
from and to what was built on it, a banner when it is revoked and another when an ancestor is.
A dataset page also proves one row on request (``?row=N``, so the proof has a URL of its own);
a batch page lists its receipts, a page at a time (``?page=N``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from api.console._common import page_hash, service_of
from api.console._render import render
from api.console.lists import pager
from api.deps import ReadAccess
from api.errors import UnknownRow
from ledger.errors import LedgerError, UnknownBatch
from ledger.formats.merkle import leaf_hash, verify_proof

__all__ = ["router"]

router = APIRouter()

RECEIPTS_PER_PAGE = 100


@router.get("/datasets/{content_hash}", response_class=HTMLResponse)
def dataset_page(
    request: Request,
    content_hash: str,
    _: ReadAccess,
    row: Annotated[int | None, Query(ge=0, le=2**63)] = None,
) -> HTMLResponse:
    service = service_of(request)
    page = service.browse.dataset(page_hash(content_hash, "dataset hash"))
    context: dict[str, Any] = {
        "page": page,
        "row_index": row,
        "row_proof": None,
        "row_error": None,
        "proof_ok": False,
        "chain_hint": None,
    }
    if row is not None:
        try:
            proof = service.datasets.row_proof(page.dataset.content_hash, row)
        except UnknownRow as exc:
            context["row_error"] = str(exc)
        except LedgerError as exc:  # the stored file no longer matches the chain
            context["row_error"] = f"this service cannot prove the row: {exc}"
        else:
            leaf = leaf_hash(proof.leaf_encoding, [proof.index, proof.row_digest])
            context["row_proof"] = proof
            context["proof_ok"] = verify_proof(page.dataset.rows_root, leaf, proof.proof)
            chain = service.admin.chain()
            context["chain_hint"] = {"contract": chain.contract_address, "chain_id": chain.chain_id}
    return render(request, "dataset.html", context)


@router.get("/models/{model_hash}", response_class=HTMLResponse)
def model_page(request: Request, model_hash: str, _: ReadAccess) -> HTMLResponse:
    page = service_of(request).browse.model(page_hash(model_hash, "model hash"))
    return render(request, "model.html", {"page": page})


@router.get("/batches/{root}", response_class=HTMLResponse)
def batch_page(
    request: Request,
    root: str,
    _: ReadAccess,
    page: Annotated[int, Query(ge=1, le=10**9)] = 1,
) -> HTMLResponse:
    """The batch, and its receipts in issue order, :data:`RECEIPTS_PER_PAGE` at a time."""
    service = service_of(request)
    batch = service.browse.batch(page_hash(root, "batch id"))
    root = batch.batch.root
    try:
        receipts = service.receipts.in_batch(
            root, offset=(page - 1) * RECEIPTS_PER_PAGE, limit=RECEIPTS_PER_PAGE
        )
        shown, count = receipts.data, receipts.count
    except UnknownBatch:  # anchored by another service on the same contract: not in our book
        shown, count = [], 0
    context = {
        "page": batch,
        "receipts": shown,
        "pager": pager(request.url.path, {}, page, count, RECEIPTS_PER_PAGE),
    }
    return render(request, "batch.html", context)

"""Prediction batches: every receipt of one batch, for an auditor to fetch and verify."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse

from api.deps import HashPath, Limit, Offset, ReadAccess, ServiceDep
from api.schemas.receipts import ReceiptsPublic

__all__ = ["JSON_LINES", "router"]

router = APIRouter(prefix="/batches", tags=["batches"])

JSON_LINES = "application/x-ndjson"


@router.get(
    "/{batch_id}/receipts",
    response_model=ReceiptsPublic,
    responses={
        200: {
            "content": {JSON_LINES: {"schema": {"type": "string"}}},
            "description": "a page as {data, count}, or every receipt as JSON lines",
        }
    },
)
def batch_receipts(
    service: ServiceDep,
    _: ReadAccess,
    batch_id: HashPath,
    offset: Offset = 0,
    limit: Limit = 50,
    format: Annotated[
        Literal["json", "jsonl"], Query(description="jsonl: every receipt, one per line")
    ] = "json",
    accept: Annotated[str | None, Header()] = None,
) -> ReceiptsPublic | Response:
    """The batch's receipts in issue order, each as ``GET /receipts/{id}`` shows it: a page
    ``{data, count}``, or with ``format=jsonl`` (or ``Accept: application/x-ndjson``) all of
    them as JSON lines, ready for ``provenance audit`` or ``POST /verify/receipts/file``."""
    if format == "jsonl" or (accept or "").startswith(JSON_LINES):
        lines = service.receipts.export(batch_id)  # an unknown batch is refused before streaming
        return StreamingResponse(lines, media_type=JSON_LINES)
    return service.receipts.in_batch(batch_id, offset=offset, limit=limit)

"""``POST /rpc``: standard Ethereum JSON-RPC over the service's chain, read methods only, so an
auditor's own tools (web3.py, ethers, foundry's ``cast``) work against the zero-configuration
service, whose embedded chain has no node of its own."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from api.deps import ReadAccess, ServiceDep
from api.service.rpc import MAX_BATCH, parse_error

router = APIRouter(tags=["rpc"])


class JsonRpcResponse(BaseModel):
    """A JSON-RPC 2.0 response: ``result`` or ``error`` (a batch answers a list of these)."""

    model_config = ConfigDict(extra="allow")

    jsonrpc: str
    id: Any = None


@router.post(
    "/rpc",
    response_model=JsonRpcResponse | list[JsonRpcResponse],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": ["object", "array"]}}},
        }
    },
)
async def json_rpc(service: ServiceDep, _: ReadAccess, request: Request) -> JSONResponse:
    """Standard Ethereum JSON-RPC (single or batch), read methods only."""
    try:
        payload = await request.json()
    except ValueError:
        return JSONResponse(parse_error())
    answer = service.rpc.answer
    if isinstance(payload, list):
        return JSONResponse([await run_in_threadpool(answer, m) for m in payload[:MAX_BATCH]])
    return JSONResponse(await run_in_threadpool(answer, payload))

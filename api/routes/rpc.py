"""``POST /rpc``: standard Ethereum JSON-RPC over the service's chain, read methods only, so an
auditor's own tools (web3.py, ethers, foundry's ``cast``) work against the zero-configuration
service, whose embedded chain has no node of its own.

The calls run on threads of their own (the app's ``rpc_threads``), never on the pool that
serves writes, so however many slow reads are in flight, a write still finds a thread. One
client's requests take turns (``rpc_client_concurrency`` at a time, ``rpc_turns``), so its slow
calls hold at most that many readers. A batch counts against the caller's rate limit once per
call.
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from api.deps import ReadAccess, ServiceDep
from api.ratelimit import charge
from api.schemas._numbers import loads
from api.service.rpc import parse_error

__all__ = ["router"]

router = APIRouter(tags=["rpc"])


class JsonRpcResponse(BaseModel):
    """A JSON-RPC 2.0 response: ``result`` or ``error`` (a batch answers a list of these)."""

    model_config = ConfigDict(extra="allow")

    jsonrpc: str
    id: Any = None


# The body is read raw (a malformed one gets JSON-RPC's own parse error, not a 422), so it is
# declared here: one request (any object; its usual fields named) or a batch (a list of
# anything), as anyOf with an `items` schema, which client generators read (a type list is not).
JSON_RPC_REQUEST = {
    "type": "object",
    "title": "JsonRpcRequest",
    "description": "a JSON-RPC 2.0 request (a batch is a list of these)",
    "properties": {
        "jsonrpc": {"type": "string", "examples": ["2.0"]},
        "method": {"type": "string", "examples": ["eth_blockNumber"]},
        "params": {"anyOf": [{"type": "array", "items": {}}, {"type": "object"}]},
        "id": {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]},
    },
    "additionalProperties": True,
}


@router.post(
    "/rpc",
    response_model=JsonRpcResponse | list[JsonRpcResponse],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"anyOf": [JSON_RPC_REQUEST, {"type": "array", "items": {}}]}
                }
            },
        }
    },
)
async def json_rpc(service: ServiceDep, _: ReadAccess, request: Request) -> JSONResponse:
    """Standard Ethereum JSON-RPC (single or batch), read methods only, bounded like a public
    node (gas cap, time budget, log range and count, batch size: see the settings)."""
    try:
        payload = loads(await request.body())  # NaN, Infinity, 1e400: a parse error
    except (ValueError, UnicodeDecodeError):
        return JSONResponse(parse_error())
    if isinstance(payload, list) and len(payload) > 1:
        charge(request, len(payload) - 1)  # the request itself was counted at the door
    state = request.app.state
    async with state.rpc_turns.hold(request):
        answer = await anyio.to_thread.run_sync(
            service.rpc.answer, payload, limiter=state.rpc_threads
        )
    return JSONResponse(answer)

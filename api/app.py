"""The FastAPI application: lifespan, limits, error handling and routers."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import AuthGate, KeyStore
from api.deps import SettingsDep
from api.problems import BodyTooLarge, Problem, install_problem_handlers, problem_response
from api.routes import api_router, rpc
from api.service import ProvenanceService
from api.settings import Settings, get_settings

__all__ = ["create_app"]

log = logging.getLogger("provenance.api")
MULTIPART_OVERHEAD = 1024 * 1024  # form fields and part headers around an upload


class BodyLimit:
    """Refuse a request body past its limit while it streams in, before it is buffered.

    Uploads (multipart) may carry ``max_upload_bytes``; every other body ``max_json_bytes``.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if content_type.startswith("multipart/"):
            name, maximum = "max_upload_bytes", self.settings.max_upload_bytes
            limit = maximum + MULTIPART_OVERHEAD  # the file itself is checked exactly later
        else:
            name, maximum = "max_json_bytes", self.settings.max_json_bytes
            limit = maximum
        too_large = BodyTooLarge(name, maximum)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            response = problem_response(413, "too-large", str(too_large.detail), limit=name)
            await response(scope, receive, send)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise too_large
            return message

        await self.app(scope, counting_receive, send)


_JSON_TOKENS = re.compile(rb'"(?:\\.|[^"\\])*"|[\[\]{}]')


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (strings skipped)."""
    depth = deepest = 0
    for match in _JSON_TOKENS.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


async def json_depth_guard(request: Request, settings: SettingsDep) -> None:
    """Refuse deeply nested JSON before it is parsed (a parser's recursion is not a limit)."""
    if request.headers.get("content-type", "").startswith("application/json"):
        depth = json_depth(await request.body())
        if depth > settings.max_json_depth:
            raise Problem(
                422,
                "too-deep",
                f"the JSON body nests {depth} levels, at most {settings.max_json_depth}",
                limit="max_json_depth",
            )


PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "properties": {
        "type": {"type": "string", "description": "stable URN naming the error"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
    "required": ["type", "title", "status", "detail"],
}


def _declare_problems(app: FastAPI) -> None:
    """Say in the OpenAPI schema what every error really is: problem+json, for any 4xx/5xx
    (FastAPI would declare its own 422 shape, which this service never sends)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = (
                PROBLEM_SCHEMA
            )
            problem = {
                "description": "problem details (RFC 9457)",
                "content": {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                },
            }
            for path_item in schema["paths"].values():
                for operation in path_item.values():
                    responses = operation.setdefault("responses", {})
                    responses.pop("422", None)
                    responses["4XX"] = responses["5XX"] = problem
            for unused in ("HTTPValidationError", "ValidationError"):
                schema["components"]["schemas"].pop(unused, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    keys = KeyStore(settings.data_dir / "keys.sqlite3")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = ProvenanceService(settings)
        app.state.service = service
        key_file = settings.data_dir / "admin.key"
        if (admin_key := keys.ensure_admin_key(key_file)) is not None:
            print(  # shown once, on first start; the file keeps it (mode 0600)
                f"Admin API key (shown once, kept in {key_file}, readable only by you):\n"
                f"  {admin_key}",
                file=sys.stderr,
            )
        log.info(
            "serving ledger %s on %s chain %s",
            service.client.address, settings.chain, service.client.chain_id(),
        )  # fmt: skip
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="Provenance Ledger",
        version="0.1.0",
        summary="Dataset and model lineage on an Ethereum ledger, with verifiable receipts.",
        lifespan=lifespan,
    )
    app.dependency_overrides[get_settings] = lambda: settings
    app.state.keys = keys
    install_problem_handlers(app)
    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(AuthGate, keys=keys, public_read=settings.public_read)  # outermost
    app.include_router(api_router, dependencies=[Depends(json_depth_guard)])
    app.include_router(rpc.router)

    _declare_problems(app)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, object]:
        """Liveness and the chain's head, so a monitor sees a stuck chain too."""
        service = app.state.service
        return {"status": "ok", "latest_block": service.client.latest_block()}

    return app

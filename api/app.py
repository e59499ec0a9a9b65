"""The FastAPI application: lifespan, limits, rate limits, error handling and routers.

Every request passes, in order: :class:`~api.auth.AuthGate` (key and role), :class:`RateLimit`
(the caller's bucket), :class:`BodyGuard` (body size and depth), then its route.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import console
from api.auth import AuthGate, access_rules
from api.console._render import asset_url
from api.engines import open_database, open_job_book, open_keys
from api.jobs import WorkPool
from api.json_depth import depth_past
from api.problems import BodyTooLarge, install_problem_handlers, problem_response
from api.ratelimit import (
    Bucket,
    RateLimit,
    RateLimiter,
    TooManyRequests,
    Turns,
    too_many_response,
)
from api.routes import api_router, rpc
from api.schemas import HealthPublic
from api.service import open_service
from api.sessions import Sessions
from api.settings import Settings, get_settings

__all__ = ["create_app"]

log = logging.getLogger("provenance.api")
MULTIPART_OVERHEAD = 1024 * 1024  # form fields and part headers around an upload
OCTETS = "application/octet-stream"


class BodyGuard:
    """Every request body passes here before anything reads it.

    - Past its limit it is refused while it streams in, before it is buffered: an upload
      (multipart) may carry ``max_upload_bytes`` (the file itself is checked exactly when it is
      staged), a JSON-RPC request ``rpc_max_body_bytes``, any other body ``max_json_bytes``.
    - Any other body is read whole (it is small by then) and its JSON nesting measured before a
      parser sees it: py-evm raises Python's recursion limit, after which a deeply nested
      document would crash the process inside ``json.loads`` instead of raising.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        multipart = headers.get(b"content-type", b"").startswith(b"multipart/")
        if multipart:
            name, maximum = "max_upload_bytes", self.settings.max_upload_bytes
            limit = maximum + MULTIPART_OVERHEAD
        elif scope.get("path") == "/rpc":
            name, maximum = "rpc_max_body_bytes", self.settings.rpc_max_body_bytes
            limit = maximum
        else:
            name, maximum = "max_json_bytes", self.settings.max_json_bytes
            limit = maximum
        too_large = BodyTooLarge(name, maximum)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            response = problem_response(413, "too-large", str(too_large.detail), limit=name)
            await response(scope, receive, send)
            return
        if multipart:
            await self.app(scope, _counting(receive, limit, too_large), send)
            return
        body = await _read_body(receive, limit)
        if body is None:
            response = problem_response(413, "too-large", str(too_large.detail), limit=name)
            await response(scope, receive, send)
            return
        depth = depth_past(body, self.settings.max_json_depth)
        if depth is not None:
            detail = f"the JSON body nests {depth} levels, at most {self.settings.max_json_depth}"
            await problem_response(422, "too-deep", detail, limit="max_json_depth")(
                scope, receive, send
            )
            return
        await self.app(scope, _replay(body, receive), send)


def _counting(receive: Receive, limit: int, too_large: BodyTooLarge) -> Receive:
    seen = 0

    async def counting_receive() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise too_large
        return message

    return counting_receive


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then the connection's events."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


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


def _binary_uploads(node: Any) -> None:
    """Mark every uploaded file (``UploadFile``: a string of ``contentMediaType``
    ``application/octet-stream``) ``format: binary`` too, the OpenAPI 3.0 spelling that client
    generators read: without it ``openapi-python-client`` types the file ``str`` and sends it as
    a text field, which the service refuses."""
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("contentMediaType") == OCTETS:
            node.setdefault("format", "binary")
        for value in node.values():
            _binary_uploads(value)
    elif isinstance(node, list):
        for value in node:
            _binary_uploads(value)


def _downloads_as_bytes(operation: dict[str, Any]) -> None:
    """A file answered in a media type that generic clients do not know (``application/zip``,
    ``application/jsonl``) is also declared as ``application/octet-stream``, bytes, which they
    all read: ``openapi-python-client`` drops a response it cannot type, and with it the
    operation's result."""
    for status, response in operation.get("responses", {}).items():
        content = response.get("content") if status.startswith("2") else None
        if not content or any(_generic(media_type) for media_type in content):
            continue
        content[OCTETS] = {"schema": {"type": "string", "format": "binary"}}


def _generic(media_type: str) -> bool:
    """A media type that a client generator reads: JSON, text, or plain bytes."""
    json = media_type == "application/json" or media_type.endswith("+json")
    return json or media_type == OCTETS or media_type.startswith("text/")


def _declare_contract(app: FastAPI, settings: Settings) -> None:
    """Say in the OpenAPI schema what every error really is: problem+json, for any 4xx/5xx
    (FastAPI would declare its own 422 shape, which this service never sends), which key
    each operation needs: ``x-required-role``, and a security requirement that is optional for
    reads while ``public_read`` is on; and that uploads and downloads are files
    (:func:`_binary_uploads`, :func:`_downloads_as_bytes`)."""

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
            rules = {
                (method.lower(), route.path): rule
                for route, rule in access_rules(app.routes)
                for method in route.methods or ()
            }
            for path, path_item in schema["paths"].items():
                for method, operation in path_item.items():
                    _downloads_as_bytes(operation)
                    responses = operation.setdefault("responses", {})
                    responses.pop("422", None)
                    responses["4XX"] = responses["5XX"] = problem
                    rule = rules.get((method, path))
                    if rule is None:
                        continue
                    needed = rule.needed(settings.public_read)
                    operation["x-required-role"] = needed or "none"
                    if needed is None:
                        operation["security"] = [{}, *operation.get("security", [])]
            for unused in ("HTTPValidationError", "ValidationError"):
                schema["components"]["schemas"].pop(unused, None)
            _binary_uploads(schema["components"])
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _serve_docs(app: FastAPI) -> None:
    """``GET /docs``: Swagger UI from the package's own assets (``swagger-ui-dist``, pinned in
    ``web/package.json`` and copied into ``api/console/static/`` by ``web/build.mjs``), so the
    page works with no network. No online validator badge (it would call out with the URL)."""

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} · API",
            swagger_js_url=asset_url("swagger-ui-bundle.js"),
            swagger_css_url=asset_url("swagger-ui.css"),
            swagger_favicon_url="data:,",
            swagger_ui_parameters={"validatorUrl": None},
        )


def _rate_limiter(settings: Settings) -> RateLimiter:
    s = settings
    return RateLimiter(
        anonymous=Bucket(
            s.rate_limit_anonymous, s.rate_limit_anonymous_burst, "rate_limit_anonymous"
        ),
        keyed=Bucket(s.rate_limit_keyed, s.rate_limit_keyed_burst, "rate_limit_keyed"),
    )


async def _too_many(request: Request, exc: TooManyRequests) -> JSONResponse:
    return too_many_response(exc)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # The shared database (its schema revision checked: SchemaMismatch refuses to start), or
    # None for the SQLite files; its pool lives as long as the process (api/engines.py).
    db = open_database(settings)
    keys = open_keys(settings, db)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = open_service(settings, keys, db)
        app.state.service = service
        # One pool per run of the app: a closed pool cannot take work, and the same app object
        # may be started again (tests, the CLI's in-process mode).
        work = app.state.work = WorkPool(
            settings.expensive_workers, settings.expensive_queue, book=open_job_book(db)
        )
        # /rpc's own threads, apart from the pool that serves writes, and each client's turns
        # (both made inside the event loop)
        app.state.rpc_threads = anyio.CapacityLimiter(max(4, 2 * settings.rpc_readers))
        app.state.rpc_turns = Turns(
            settings.rpc_client_concurrency,
            wait=settings.rpc_request_timeout,
            setting="rpc_client_concurrency",
        )
        key_file = settings.data_dir / "admin.key"
        if (admin_key := keys.ensure_admin_key(key_file)) is not None:
            print(  # shown once, on first start; the file keeps it (mode 0600)
                f"Admin API key (shown once, kept in {key_file}, readable only by you):\n"
                f"  {admin_key}",
                file=sys.stderr,
            )
        log.info(
            "serving ledger %s on %s chain %s",
            service.core.client.address, settings.chain, service.core.client.chain_id(),
        )  # fmt: skip
        try:
            yield
        finally:
            work.close()
            service.close()

    app = FastAPI(
        title="Provenance Ledger",
        version="0.1.0",
        summary="Dataset and model lineage on an Ethereum ledger, with verifiable receipts.",
        lifespan=lifespan,
        docs_url=None,  # served by _serve_docs, from the package's assets, not a CDN
        redoc_url=None,  # ReDoc only comes from a CDN: /docs is the one API page
    )
    app.state.settings = settings
    app.state.keys = keys
    install_problem_handlers(app)
    app.add_exception_handler(TooManyRequests, _too_many)  # type: ignore[arg-type]
    app.add_middleware(BodyGuard, settings=settings)
    app.add_middleware(RateLimit, limiter=_rate_limiter(settings))
    sessions = Sessions(
        keys, settings.data_dir / "session.secret", max_age=settings.session_max_age
    )
    app.state.sessions = sessions
    app.add_middleware(
        AuthGate, keys=keys, public_read=settings.public_read, sessions=sessions
    )  # outermost
    app.include_router(api_router)
    app.include_router(rpc.router)
    app.include_router(console.router)

    _declare_contract(app, settings)
    _serve_docs(app)

    @app.get("/healthz", tags=["health"], response_model=HealthPublic)
    def healthz() -> HealthPublic:
        """Liveness, the chain's head (so a monitor sees a stuck chain too) and, when degraded,
        why (a reorganisation past the final depth, say); open to all."""
        return app.state.service.admin.health()

    return app

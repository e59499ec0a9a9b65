"""RFC 9457 problem details: every error the service answers has a stable ``type``.

Domain exceptions from ``ledger``, ``ml`` and ``api.service.errors`` are mapped here, in one
table, to a status and a type; only routes raise :class:`Problem` themselves, and no stack trace
ever reaches a client.

A person's browser is not a client of the API: an error on a console page (any path outside
the API's, see :mod:`api.console.errors`) asked for with ``Accept: text/html`` is answered with
the same status as a page of the console. Everything else, and every API path whatever it asks
for, gets problem+json.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import errors as service_errors
from api.schemas._numbers import NUMBER_ERROR
from ledger import errors as ledger_errors
from ledger.attest.key import AttestationError
from ledger.chain.backends.embedded import ChainStoreFull
from ledger.formats.receipts import ReceiptError
from ledger.index.lineage import RecordNotIndexed
from ledger.storage.artifacts import ArtifactCorrupted, ArtifactMissing, InsufficientStorage
from ledger.storage.postgres import StoreUnavailable
from ledger.storage.row_index import RowIndexCorrupt
from ledger.storage.s3 import ArtifactStoreUnavailable
from ledger.storage.schema import SchemaMismatch
from ml.errors import MlError, TooLarge, TrainingInterrupted

__all__ = [
    "PROBLEM_BASE",
    "BodyTooLarge",
    "Problem",
    "install_problem_handlers",
    "problem_for_exception",
    "problem_response",
]

PROBLEM_BASE = "urn:provenance-ledger:problem:"
WWW_AUTHENTICATE = 'Bearer realm="provenance-ledger"'
MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("provenance.api")


class Problem(Exception):
    """An error answer: ``Problem(404, "unknown-model", "no model 0x...")``."""

    def __init__(self, status: int, slug: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.slug, self.detail, self.extra = status, slug, detail, extra


class BodyTooLarge(StarletteHTTPException):
    """A request body went past its limit while streaming in (raised from ``receive``, so it
    must be an HTTPException for FastAPI to let it through unchanged)."""

    def __init__(self, limit: str, maximum: int) -> None:
        super().__init__(413, f"the request body exceeds {limit} = {maximum} bytes")
        self.limit = limit


def _kebab(name: str) -> str:
    """``DatasetAlreadyRegistered`` → ``dataset-already-registered`` (acronyms kept whole)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", name).lower()


def problem_response(status: int, slug: str, detail: str, **extra: Any) -> JSONResponse:
    body = {
        "type": PROBLEM_BASE + slug,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


# Every domain error the service may raise, most specific first: its class, status and problem
# type (None: the class name in kebab case, or an ``MlError``'s own ``code``). The one place where
# an exception becomes an HTTP answer.
_TABLE: list[tuple[type[Exception], int, str | None]] = [
    (InsufficientStorage, 507, "insufficient-storage"),
    (ChainStoreFull, 507, "insufficient-storage"),
    (RowIndexCorrupt, 500, "row-index-corrupt"),
    (ledger_errors.GasLimitExceeded, 413, "too-large"),
    (service_errors.LimitExceeded, 413, "too-large"),
    (TooLarge, 413, "too-large"),
    (service_errors.DerivationUnchanged, 409, None),
    # The training process was stopped under it (the service stopping, a crash): try again.
    (TrainingInterrupted, 503, None),
    (MlError, 422, None),
    (ArtifactMissing, 500, "artifact-missing"),
    (ArtifactCorrupted, 500, "artifact-corrupted"),
    (service_errors.RowsRootMismatch, 500, None),
    (service_errors.VersionManifestBroken, 500, None),
    (service_errors.Misconfigured, 500, None),
    (AttestationError, 500, "attestation-key"),  # the service's own key cannot be read
    (ReceiptError, 422, "malformed-receipt"),
    # One type for every way the chain can be away (closed, refused, timed out), so a client
    # can recognise "retry later" without knowing the backends' exception names.
    (ledger_errors.ChainUnavailable, 503, "chain-unavailable"),
    # The shared engines of several replicas away (PostgreSQL, the object store): retry later,
    # with ``Retry-After``; nothing was written. A schema of another revision is the operator's
    # to fix (`provenance db upgrade`), refused at start, so a request rarely meets it.
    (StoreUnavailable, 503, "store-unavailable"),
    (ArtifactStoreUnavailable, 503, "artifact-store-unavailable"),
    (SchemaMismatch, 503, "schema-mismatch"),
    # The fees are over the operator's ceiling: the write is queued and goes out when they fall.
    (ledger_errors.FeeAboveCeiling, 503, "fee-above-ceiling"),
    (RecordNotIndexed, 404, "unknown-record"),
    (ledger_errors.UnknownRecord, 404, None),
    (ledger_errors.AlreadyRegistered, 409, None),
    # Named after the contract's error; its problem types predate the name and stay.
    (ledger_errors.AlreadyRevoked, 409, "already-revoked"),
    (service_errors.RecordTainted, 409, "record-tainted"),
    (service_errors.ReadingNotSealed, 409, None),
    (ledger_errors.RecordIsRevoked, 409, "record-revoked"),
    (ledger_errors.NotAuthorized, 403, None),
    (ledger_errors.InvalidRecord, 422, None),
    (ledger_errors.LedgerError, 502, None),
]
_EXTRA_FIELDS = (
    "limit",
    "maximum",
    "expected",
    "found",
    "parameter",
    "cap",
    "registered",
    "ceiling",  # the fee ceiling a write waits under
    "chain_status",  # a pending record: "pending", never registered
    "waiting_for",  # what holds a pending write up (a fee over the ceiling)
)
# Request-validation errors with a problem type of their own, by pydantic error type; every
# other refusal of a request's shape is ``invalid-request``. Such a problem also names the
# field it is about (``field``: ``params.alpha``, ``rows[3].x1``, ``steps[0].factor``).
_VALIDATION_TABLE: dict[str, str] = {
    # A JSON number that is not a finite float64 (``api/schemas/_numbers.py``).
    NUMBER_ERROR: "number-out-of-range",
}
# Where a validation error's location starts: the part of the request, not a field.
_REQUEST_PARTS = frozenset({"body", "query", "path", "header", "cookie"})


def problem_for_exception(exc: Exception) -> Problem:
    """The problem an exception is answered with (status, type, detail), by the table."""
    return _from_exception(exc)


def _from_exception(exc: Exception) -> Problem:
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, service_errors.AccessRefused):
        return Problem(exc.status, exc.slug, str(exc))
    for cls, status, slug in _TABLE:
        if isinstance(exc, cls):
            extra = {k: v for k in _EXTRA_FIELDS if (v := getattr(exc, k, None)) is not None}
            name = slug or getattr(exc, "code", None) or _kebab(type(exc).__name__)
            return Problem(status, name, str(exc), **extra)
    log.exception("unhandled error", exc_info=exc)
    return Problem(500, "internal-error", "the service failed; the error was logged")


def _field(loc: list[Any]) -> str:
    """A validation error's location as a client names the field: ``["body", "rows", 3, "x1"]``
    → ``rows[3].x1``."""
    parts = loc[1:] if loc and loc[0] in _REQUEST_PARTS else loc
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path


def _page(request: Request, status: int, detail: str) -> Response | None:
    """The error as a console page when a browser asked for one (None: answer problem+json).

    Imported here, not at the top: the console's pages import the service, which imports
    this module."""
    from api.console.errors import error_page, wants_html

    return error_page(request, status, detail) if wants_html(request) else None


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error, expected or not, as problem+json (or, to a browser on a console
    page, as an HTML page with the same status)."""

    async def domain(request: Request, exc: Exception) -> Response:
        problem = _from_exception(exc)
        if problem.status != 401 and (page := _page(request, problem.status, problem.detail)):
            return page
        response = problem_response(problem.status, problem.slug, problem.detail, **problem.extra)
        if problem.status == 401:
            response.headers["WWW-Authenticate"] = WWW_AUTHENTICATE
        if (retry_after := getattr(exc, "retry_after", None)) is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    async def validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request", "type": ""}
        if (slug := _VALIDATION_TABLE.get(first["type"])) is not None:
            field = _field(first["loc"])
            detail = f"{field}: {first['msg']}" if field else first["msg"]
            if page := _page(request, 422, detail):
                return page
            return problem_response(422, slug, detail, field=field, errors=errors)
        where = ".".join(str(part) for part in first["loc"])
        detail = f"{where}: {first['msg']}" if where else first["msg"]
        if page := _page(request, 422, detail):
            return page
        return problem_response(422, "invalid-request", detail, errors=errors)

    async def http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code != 401 and (page := _page(request, exc.status_code, str(exc.detail))):
            for key, value in (exc.headers or {}).items():
                page.headers[key] = value
            return page
        slug = {404: "not-found", 405: "method-not-allowed", 413: "too-large"}.get(
            exc.status_code, "http-error"
        )
        extra = {"limit": exc.limit} if isinstance(exc, BodyTooLarge) else {}
        response = problem_response(exc.status_code, slug, str(exc.detail), **extra)
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    app.add_exception_handler(RequestValidationError, validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http)  # type: ignore[arg-type]
    for cls in (Problem, service_errors.AccessRefused, ledger_errors.LedgerError, MlError):
        app.add_exception_handler(cls, domain)
    app.add_exception_handler(Exception, domain)  # the last resort: logged, answered as 500

"""RFC 9457 problem details: every error the service answers has a stable ``type``.

Domain exceptions from ``ledger`` and ``ml`` are mapped here, in one place, to a status and a
type; nothing else in the service formats errors, and no stack trace ever reaches a client.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger import errors as ledger_errors
from ledger.receipts import ReceiptError
from ledger.store import ArtifactCorrupted, ArtifactMissing
from ml.errors import MlError, TooLarge

__all__ = [
    "PROBLEM_BASE",
    "BodyTooLarge",
    "Problem",
    "install_problem_handlers",
    "problem_response",
]

PROBLEM_BASE = "urn:provenance-ledger:problem:"
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


# Ledger exceptions by class, most specific first.
_LEDGER_STATUS: list[tuple[type[Exception], int]] = [
    (ledger_errors.UnknownRecord, 404),
    (ledger_errors.AlreadyRegistered, 409),
    (ledger_errors.RecordRevoked, 409),
    (ledger_errors.NotAuthorized, 403),
    (ledger_errors.InvalidRecord, 422),
]


def _from_exception(exc: Exception) -> Problem:
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, TooLarge):
        return Problem(413, "too-large", str(exc), limit=exc.limit)
    if isinstance(exc, MlError):
        return Problem(422, exc.code, str(exc))
    if isinstance(exc, ArtifactMissing):
        return Problem(500, "artifact-missing", str(exc))
    if isinstance(exc, ArtifactCorrupted):
        return Problem(500, "artifact-corrupted", str(exc), expected=exc.expected, found=exc.found)
    if isinstance(exc, ReceiptError):
        return Problem(422, "malformed-receipt", str(exc))
    if isinstance(exc, ledger_errors.ChainUnavailable):
        # One type for every way the chain can be away (closed, refused, timed out), so a
        # client can recognise "retry later" without knowing the backends' exception names.
        return Problem(503, "chain-unavailable", str(exc))
    if isinstance(exc, ledger_errors.LedgerError):
        for cls, status in _LEDGER_STATUS:
            if isinstance(exc, cls):
                return Problem(status, _kebab(type(exc).__name__), str(exc))
        return Problem(502, _kebab(type(exc).__name__), str(exc))
    log.exception("unhandled error", exc_info=exc)
    return Problem(500, "internal-error", "the service failed; the error was logged")


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error, expected or not, as problem+json."""

    async def domain(request: Request, exc: Exception) -> JSONResponse:
        problem = _from_exception(exc)
        return problem_response(problem.status, problem.slug, problem.detail, **problem.extra)

    async def validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(part) for part in first["loc"])
        return problem_response(
            422, "invalid-request", f"{where}: {first['msg']}" if where else first["msg"],
            errors=errors,
        )  # fmt: skip

    async def http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
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
    for cls in (Problem, ledger_errors.LedgerError, MlError):
        app.add_exception_handler(cls, domain)
    app.add_exception_handler(Exception, domain)  # the last resort: logged, answered as 500

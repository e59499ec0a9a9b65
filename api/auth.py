"""API keys with roles: ``auditor`` reads and verifies, ``registrar`` also writes, ``admin`` also
manages keys and on-chain registrars.

The keys themselves (made once, stored as hashes) are :mod:`api.keys`'s; this module decides
who may make which request with them.

Which role a request needs is declared by its route, as a dependency in its own signature
(``_: Annotated[KeyInfo | None, Depends(NEEDS_REGISTRAR)]``); :class:`AuthGate` reads that same
declaration to refuse a request before its body is read, so an anonymous upload is never spooled.
Reads (``READ``) need ``auditor`` unless ``PROVENANCE_PUBLIC_READ`` leaves them open; writes need
``registrar``; administration ``admin``. Writes are never open, and neither is expensive work
(retraining, re-running, bulk verification: ``NEEDS_AUDITOR``, or :func:`require` where a request
asks for it with a flag), which needs ``auditor`` even while public reads are on.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request, Security
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import AccessRefused
from api.keys import ApiKeys, KeyInfo, Role, role_at_least
from api.paths import is_api_path
from api.problems import WWW_AUTHENTICATE, problem_for_exception, problem_response
from ledger.errors import LedgerError

__all__ = [
    "NEEDS_ADMIN",
    "NEEDS_AUDITOR",
    "NEEDS_REGISTRAR",
    "READ",
    "SESSION_COOKIE",
    "Access",
    "AuthGate",
    "access_rules",
    "require",
]

SESSION_COOKIE = "pl_session"  # a console session (api/sessions.py), for private deployments


class Access:
    """A route's access rule, used as a dependency in its signature: the least role it needs.

    ``read=True`` marks a read, open to anyone while the service's ``public_read`` is on.
    The dependency answers the caller's key (or None), which the gate has already checked.
    """

    def __init__(self, role: Role, *, read: bool = False) -> None:
        self.role, self.read = role, read

    def needed(self, public_read: bool) -> Role | None:
        return None if self.read and public_read else self.role

    async def __call__(
        self,
        request: Request,
        _credentials: HTTPAuthorizationCredentials | None = Security(
            HTTPBearer(auto_error=False, description="an API key: Bearer pl_...")
        ),
    ) -> KeyInfo | None:
        info = request.scope.get("state", {}).get("api_key")
        refusal = _refusal(self.needed(request.app.state.settings.public_read), info)
        if refusal is not None:  # reached only when the gate was bypassed
            raise AccessRefused(*refusal)
        return info


READ = Access("auditor", read=True)
NEEDS_AUDITOR = Access("auditor")  # a read, but expensive: never open to anonymous callers
NEEDS_REGISTRAR = Access("registrar")
NEEDS_ADMIN = Access("admin")


def require(info: KeyInfo | None, role: Role) -> KeyInfo:
    """``info`` if it holds ``role`` (or better); else :class:`AccessRefused` (401 or 403).

    For what a route decides from the request itself, after the gate let it in: a read route
    that is open to all, asked for expensive work (``?retrain=true``), needs an auditor key.
    """
    refusal = _refusal(role, info)
    if refusal is not None:
        raise AccessRefused(*refusal)
    assert info is not None
    return info


def access_rules(routes: Any) -> list[tuple[Any, Access | None]]:
    """Every route of an app (routers included) with the access rule it declares."""
    return [(context, access_of(context.original_route)) for context in iter_route_contexts(routes)]


def access_of(route: Any) -> Access | None:
    """The access rule a route declares among its dependencies (None: it declares none)."""
    if not isinstance(route, APIRoute):
        return None
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        if isinstance(dependency.call, Access):
            return dependency.call
        pending.extend(dependency.dependencies)
    return None


def _refusal(needed: Role | None, info: KeyInfo | None) -> tuple[int, str, str] | None:
    """(status, type, detail) when ``info`` may not make a request that needs ``needed``."""
    if needed is None:
        return None
    if info is None:
        return 401, "unauthorized", f"this request needs an API key with the {needed} role"
    if not role_at_least(info.role, needed):
        detail = f"key {info.key_id} has the {info.role} role; this request needs {needed}"
        return 403, "forbidden", detail
    return None


_UNKNOWN = object()
_FOUND_MAX = 4096
_FOUND_PATH_MAX = 256  # an API path with a hash or two is under 200 characters


class AuthGate:
    """ASGI middleware: authenticates the bearer key of every HTTP request, and refuses one
    that its route's :class:`Access` rule does not allow before anything reads its body.

    401 without a valid key (with ``WWW-Authenticate: Bearer``), 403 without the role, both as
    problem+json; nothing behind it runs for a refused request.
    """

    def __init__(
        self, app: ASGIApp, keys: ApiKeys, *, public_read: bool, sessions: Any = None
    ) -> None:
        self.app, self.keys, self.public_read = app, keys, public_read
        self.sessions = sessions  # api.sessions.Sessions: a console cookie stands for a key
        self._rules: list[tuple[Any, Access | None]] | None = None
        # Each (method, path)'s rule, found once: matching every route in turn costs a hot
        # route (a model's predict) a few percent of its CPU. Bounded in count and in path length
        # (paths carry hashes, and any client can send any path).
        self._found: dict[tuple[str, str], Access | None] = {}
        # A local key store (SQLite, WAL: a reader never waits for a writer) answers in a few
        # tens of microseconds, less than the thread-pool hop that would carry the call; a
        # networked one (PostgreSQL) is asked from a thread, never from the event loop.
        self._inline = bool(getattr(keys, "answers_inline", False))

    def _rule_for(self, scope: Scope) -> Access | None:
        key = (scope.get("method", ""), scope.get("path", ""))
        if (found := self._found.get(key, _UNKNOWN)) is not _UNKNOWN:
            return found  # type: ignore[return-value]
        if self._rules is None:  # the routes are all there by the first request
            self._rules = access_rules(scope["app"].routes)
        rule = None
        for route, candidate in self._rules:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                rule = candidate
                break
        if len(key[1]) <= _FOUND_PATH_MAX:  # a client's odd long paths are not kept
            if len(self._found) >= _FOUND_MAX:
                self._found.clear()
            self._found[key] = rule
        return rule

    async def _authenticate(self, key: str) -> KeyInfo | None:
        if self._inline:
            return self.keys.authenticate(key)
        return await run_in_threadpool(self.keys.authenticate, key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        scheme, _, key = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        info = None
        if key.strip() and scheme.lower() == "bearer":
            try:
                info = await self._authenticate(key.strip())
            except LedgerError as exc:  # the shared database away: "retry", never "unknown key"
                await _unavailable(exc, scope, receive, send)
                return
            if info is None:
                await _refuse(
                    401, "unauthorized", "the API key is unknown or revoked", scope, receive, send
                )
                return
        session_ended = False
        if info is None and self.sessions is not None:
            cookie = _cookie(headers, SESSION_COOKIE)
            if cookie:  # read-only: the session's role is capped at auditor
                try:
                    info = await run_in_threadpool(self.sessions.check, cookie)
                except LedgerError as exc:
                    await _unavailable(exc, scope, receive, send)
                    return
                session_ended = info is None
        rule = self._rule_for(scope)
        refusal = None if rule is None else _refusal(rule.needed(self.public_read), info)
        if refusal is not None:
            if refusal[0] == 401 and self.sessions is not None and _is_page(scope, headers):
                await _to_sign_in(scope, receive, send, ended=session_ended)
                return
            await _refuse(*refusal, scope, receive, send)
            return
        scope.setdefault("state", {})["api_key"] = info
        await self.app(scope, receive, send)


def _cookie(headers: dict[bytes, bytes], name: str) -> str | None:
    """The value of cookie ``name`` in the request's ``Cookie`` header, or None."""
    for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


def _is_page(scope: Scope, headers: dict[bytes, bytes]) -> bool:
    """Whether a refused request is a person's browser asking for a console page (a GET for
    HTML outside the API), which is sent to the sign-in page rather than answered 401."""
    path = scope.get("path", "")
    if scope.get("method") not in ("GET", "HEAD"):
        return False
    if is_api_path(path):
        return False
    return "text/html" in headers.get(b"accept", b"").decode("latin-1").lower()


async def _to_sign_in(scope: Scope, receive: Receive, send: Send, *, ended: bool) -> None:
    """303 to ``/signin``, with the page asked for as ``next`` (and ``ended=1`` when the
    browser's session was refused: expired, or its key revoked)."""
    target = scope.get("path", "/")
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    query = {"next": target, **({"ended": "1"} if ended else {})}
    response = RedirectResponse(f"/signin?{urlencode(query)}", status_code=303)
    if ended:
        response.delete_cookie(SESSION_COOKIE, path="/")
    await response(scope, receive, send)


async def _unavailable(exc: LedgerError, scope: Scope, receive: Receive, send: Send) -> None:
    """A key store that cannot be asked (``StoreUnavailable``) as the 503 problem every route
    answers for it, with its ``Retry-After``; any other ``LedgerError`` is not ours to hide."""
    problem = problem_for_exception(exc)
    if problem.status != 503:
        raise exc
    response = problem_response(problem.status, problem.slug, problem.detail)
    response.headers["Retry-After"] = str(getattr(exc, "retry_after", 1))
    await response(scope, receive, send)


async def _refuse(
    status: int, slug: str, detail: str, scope: Scope, receive: Receive, send: Send
) -> None:
    response = problem_response(status, slug, detail)
    if status == 401:
        response.headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    await response(scope, receive, send)

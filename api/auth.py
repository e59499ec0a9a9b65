"""API keys with roles: ``auditor`` reads and verifies, ``registrar`` also writes, ``admin`` also
manages keys and on-chain registrars.

Keys are random, shown once, and stored only as SHA-256 hashes in ``<data dir>/keys.sqlite3``
(WAL, so ``provenance keys ...`` works while the service runs, and a revoked key stops working
at the next request), behind the small :class:`ApiKeys` interface.

Which role a request needs is declared by its route, as a dependency in its own signature
(``_: Annotated[KeyInfo | None, Depends(NEEDS_REGISTRAR)]``); :class:`AuthGate` reads that same
declaration to refuse a request before its body is read, so an anonymous upload is never spooled.
Reads (``READ``) need ``auditor`` unless ``PROVENANCE_PUBLIC_READ`` leaves them open; writes need
``registrar``; administration ``admin``. Writes are never open, and neither is expensive work
(retraining, re-running, bulk verification: ``NEEDS_AUDITOR``, or :func:`require` where a request
asks for it with a flag), which needs ``auditor`` even while public reads are on.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

from fastapi import Request, Security
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import AccessRefused
from api.paths import is_api_path
from api.problems import WWW_AUTHENTICATE, problem_for_exception, problem_response
from ledger.errors import LedgerError

__all__ = [
    "NEEDS_ADMIN",
    "NEEDS_AUDITOR",
    "NEEDS_REGISTRAR",
    "READ",
    "ROLES",
    "SESSION_COOKIE",
    "Access",
    "ApiKeys",
    "AuthGate",
    "KeyInfo",
    "KeyStore",
    "Role",
    "access_rules",
    "require",
]

Role = Literal["auditor", "registrar", "admin"]
ROLES: tuple[Role, ...] = ("auditor", "registrar", "admin")
_RANK = {role: rank for rank, role in enumerate(ROLES)}
SESSION_COOKIE = "pl_session"  # a console session (api/sessions.py), for private deployments
_PREFIX = "pl_"


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    role: Role
    name: str
    created_at: int
    revoked_at: int | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class ApiKeys(Protocol):
    """What the service needs of a key store; ``KeyStore`` is the SQLite one,
    ``api.pg_keys.PgKeyStore`` the PostgreSQL one."""

    def create(self, role: str, name: str = "") -> tuple[KeyInfo, str]: ...
    def authenticate(self, key: str) -> KeyInfo | None: ...
    def active_digest(self, key_id: str) -> tuple[KeyInfo, str] | None: ...
    def list(self) -> list[KeyInfo]: ...
    def revoke(self, key_id: str) -> bool: ...
    def has_admin(self) -> bool: ...
    def ensure_admin_key(self, key_file: Path) -> str | None: ...


def new_key(role: str, name: str) -> tuple[KeyInfo, str]:
    """A fresh key of ``role`` and its secret, for any key store to record (by its digest)."""
    if role not in _RANK:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    key_id = secrets.token_hex(4)
    key = f"{_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return KeyInfo(key_id, role, name, int(time.time()), None), key  # type: ignore[arg-type]


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyStore:
    """API keys, by hash. Safe to share between the service and CLI processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS api_keys (key_id TEXT PRIMARY KEY, "
                "digest TEXT NOT NULL UNIQUE, role TEXT NOT NULL, name TEXT NOT NULL, "
                "created_at INTEGER NOT NULL, revoked_at INTEGER)"
            )

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10)
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    def create(self, role: str, name: str = "") -> tuple[KeyInfo, str]:
        """A new key; the secret is returned once and never stored."""
        info, key = new_key(role, name)
        key_id = info.key_id
        with self._db() as db:
            db.execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, NULL)",
                (key_id, _digest(key), role, info.name, info.created_at),
            )
        return info, key

    def authenticate(self, key: str) -> KeyInfo | None:
        """The active key matching ``key``, or None."""
        row = (
            self._db()
            .execute(
                "SELECT key_id, role, name, created_at, revoked_at, digest FROM api_keys "
                "WHERE digest = ?",
                (_digest(key),),
            )
            .fetchone()
        )
        if row is None or not hmac.compare_digest(row[5], _digest(key)):
            return None
        info = KeyInfo(*row[:5])
        return info if info.active else None

    def active_digest(self, key_id: str) -> tuple[KeyInfo, str] | None:
        """An active key's info and stored hash by its id (what a console session is bound
        to), or None when there is no such key or it is revoked."""
        row = (
            self._db()
            .execute(
                "SELECT key_id, role, name, created_at, revoked_at, digest FROM api_keys "
                "WHERE key_id = ? AND revoked_at IS NULL",
                (key_id,),
            )
            .fetchone()
        )
        return None if row is None else (KeyInfo(*row[:5]), row[5])

    def list(self) -> list[KeyInfo]:
        rows = self._db().execute(
            "SELECT key_id, role, name, created_at, revoked_at FROM api_keys ORDER BY created_at"
        )
        return [KeyInfo(*row) for row in rows]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by id; False if there is no such active key."""
        with self._db() as db:
            cursor = db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (int(time.time()), key_id),
            )
        return cursor.rowcount == 1

    def has_admin(self) -> bool:
        return (
            self._db()
            .execute("SELECT 1 FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL")
            .fetchone()
            is not None
        )

    def ensure_admin_key(self, key_file: Path) -> str | None:
        """On first start: create an admin key and write it to ``key_file`` (mode 0600).

        Returns the new key, or None when an admin key exists already.
        """
        # Two processes starting at once create one key: the check and the insert hold the
        # file's write lock (create's ``with`` commits, or rolls back on an error).
        self._db().execute("BEGIN IMMEDIATE")
        if self.has_admin():
            self._db().execute("ROLLBACK")
            return None
        _, key = self.create("admin", "created on first start")
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
        os.chmod(key_file, 0o600)
        return key


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
    if _RANK[info.role] < _RANK[needed]:
        detail = f"key {info.key_id} has the {info.role} role; this request needs {needed}"
        return 403, "forbidden", detail
    return None


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

    def _rule_for(self, scope: Scope) -> Access | None:
        if self._rules is None:  # the routes are all there by the first request
            self._rules = access_rules(scope["app"].routes)
        for route, rule in self._rules:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return rule
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        scheme, _, key = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        info = None
        if key.strip() and scheme.lower() == "bearer":
            try:
                info = await run_in_threadpool(self.keys.authenticate, key.strip())
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

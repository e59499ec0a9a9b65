"""API keys with roles: ``auditor`` reads and verifies, ``registrar`` also writes, ``admin`` also
manages keys and on-chain registrars.

Keys are random, shown once, and stored only as SHA-256 hashes in ``<data dir>/keys.sqlite3``
(WAL, so ``provenance keys ...`` works while the service runs, and a revoked key stops working
at the next request). Which role a request needs is decided in one place, from its method and
path: reads (GET, and POSTs under ``/v1/verify`` and ``/rpc``) need ``auditor`` unless
``PROVENANCE_PUBLIC_READ`` leaves them open; every other write needs ``registrar``; everything
under ``/v1/admin`` needs ``admin``. Writes are never open.
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
from typing import Literal

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from api.problems import problem_response

__all__ = ["ROLES", "AuthGate", "KeyInfo", "KeyStore", "Role", "required_role"]

Role = Literal["auditor", "registrar", "admin"]
ROLES: tuple[Role, ...] = ("auditor", "registrar", "admin")
_RANK = {role: rank for rank, role in enumerate(ROLES)}
_PREFIX = "pl_"
_READ_POSTS = ("/v1/verify/", "/rpc")


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
        if role not in _RANK:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        key_id = secrets.token_hex(4)
        key = f"{_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        info = KeyInfo(key_id, role, name[:200], int(time.time()), None)  # type: ignore[arg-type]
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
        if self.has_admin():
            return None
        _, key = self.create("admin", "created on first start")
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
        os.chmod(key_file, 0o600)
        return key


def required_role(method: str, path: str, *, public_read: bool) -> Role | None:
    """The least role a request needs (None: open to anyone)."""
    if path.startswith("/v1/admin"):
        return "admin"
    reading = method in ("GET", "HEAD", "OPTIONS") or (
        method == "POST" and path.startswith(_READ_POSTS)
    )
    if reading:
        return None if public_read else "auditor"
    return "registrar"


class AuthGate:
    """ASGI middleware: every request under ``/v1`` and ``/rpc`` passes here first.

    401 without a valid key (with ``WWW-Authenticate: Bearer``), 403 without the role, both as
    problem+json; nothing behind it runs for a refused request.
    """

    def __init__(self, app: ASGIApp, keys: KeyStore, *, public_read: bool) -> None:
        self.app, self.keys, self.public_read = app, keys, public_read

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(("/v1", "/rpc")):
            await self.app(scope, receive, send)
            return
        needed = required_role(scope["method"], path, public_read=self.public_read)
        headers = dict(scope.get("headers") or [])
        scheme, _, key = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        info = None
        if key.strip() and scheme.lower() == "bearer":
            info = await run_in_threadpool(self.keys.authenticate, key.strip())
            if info is None:
                await _refuse(401, "the API key is unknown or revoked", scope, receive, send)
                return
        if needed is not None and info is None:
            detail = f"this request needs an API key with the {needed} role"
            await _refuse(401, detail, scope, receive, send)
            return
        if needed is not None and info is not None and _RANK[info.role] < _RANK[needed]:
            detail = f"key {info.key_id} has the {info.role} role; this request needs {needed}"
            await _refuse(403, detail, scope, receive, send)
            return
        scope.setdefault("state", {})["api_key"] = info
        await self.app(scope, receive, send)


async def _refuse(status: int, detail: str, scope: Scope, receive: Receive, send: Send) -> None:
    slug = "unauthorized" if status == 401 else "forbidden"
    response = problem_response(status, slug, detail)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="provenance-ledger"'
    await response(scope, receive, send)

"""API keys: what a key is (id, role, name, times), how a new one is made, and the SQLite key
store of a data directory (``<data dir>/keys.sqlite3``, WAL, so ``provenance keys ...`` works
while the service runs and a revoked key stops working at the next request).

Keys are random, shown once, and stored only as SHA-256 hashes, behind the small
:class:`ApiKeys` interface (the PostgreSQL store is :class:`api.pg_keys.PgKeyStore`). Who may do
what with a key is :mod:`api.auth`'s.
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
from typing import Literal, Protocol

__all__ = [
    "ROLES",
    "ApiKeys",
    "KeyInfo",
    "KeyStore",
    "Role",
    "digest",
    "new_key",
    "role_at_least",
    "write_key_file",
]

Role = Literal["auditor", "registrar", "admin"]
ROLES: tuple[Role, ...] = ("auditor", "registrar", "admin")
_RANK = {role: rank for rank, role in enumerate(ROLES)}
_PREFIX = "pl_"


def role_at_least(role: Role, needed: Role) -> bool:
    """Whether ``role`` holds ``needed`` (each role can do what the ones before it can)."""
    return _RANK[role] >= _RANK[needed]


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


def digest(key: str) -> str:
    """A key as it is stored: its SHA-256, never the key itself."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def write_key_file(key_file: Path, key: str) -> None:
    """Write a first-start admin key to ``key_file``, readable only by its owner."""
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    os.chmod(key_file, 0o600)


class KeyStore:
    """API keys, by hash. Safe to share between the service and CLI processes."""

    # One indexed read of a local WAL database: the gate asks it from the event loop rather
    # than through a thread (api.auth.AuthGate).
    answers_inline = True

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
                (key_id, digest(key), role, info.name, info.created_at),
            )
        return info, key

    def authenticate(self, key: str) -> KeyInfo | None:
        """The active key matching ``key``, or None."""
        row = (
            self._db()
            .execute(
                "SELECT key_id, role, name, created_at, revoked_at, digest FROM api_keys "
                "WHERE digest = ?",
                (digest(key),),
            )
            .fetchone()
        )
        if row is None or not hmac.compare_digest(row[5], digest(key)):
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
        write_key_file(key_file, key)
        return key

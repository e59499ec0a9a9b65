"""API keys in PostgreSQL, shared by every replica: the same table, rules and answers as the
SQLite :class:`api.keys.KeyStore` (keys stored only as SHA-256 hashes, shown once, revoked keys
refused at the next request whichever replica serves it).

A key created or revoked through one replica (or ``provenance keys`` with the same
``PROVENANCE_DATABASE_URL``) holds at once on every other: each request reads the table, there
is no cache to expire. The database away raises ``StoreUnavailable``, which the auth gate
answers 503 ``store-unavailable`` with ``Retry-After``, never 401: a key is not unknown because
the database could not be asked.
"""

from __future__ import annotations

import hmac
import time
from pathlib import Path

from api.keys import KeyInfo, digest, new_key, write_key_file
from ledger.storage.postgres import PgConnections

__all__ = ["PgKeyStore"]

_COLUMNS = "key_id, role, name, created_at, revoked_at"
# The advisory lock ensure_admin_key takes, so replicas starting together create one admin key.
ADMIN_KEY_LOCK = 0x6C65646761646D  # "ledgadm" in ASCII


def _info(row: dict) -> KeyInfo:
    return KeyInfo(row["key_id"], row["role"], row["name"], row["created_at"], row["revoked_at"])


class PgKeyStore:
    """API keys, by hash, in the shared database (an :class:`api.keys.ApiKeys`)."""

    def __init__(self, db: PgConnections) -> None:
        self._db = db

    def create(self, role: str, name: str = "") -> tuple[KeyInfo, str]:
        """A new key; the secret is returned once and never stored."""
        info, key = new_key(role, name)
        key_id = info.key_id
        with self._db.write() as conn:
            conn.execute(
                f"INSERT INTO api_keys ({_COLUMNS}, digest) VALUES (?, ?, ?, ?, NULL, ?)",
                (key_id, role, info.name, info.created_at, digest(key)),
            )
        return info, key

    def authenticate(self, key: str) -> KeyInfo | None:
        """The active key matching ``key``, or None."""
        rows = self._db.query(
            f"SELECT {_COLUMNS}, digest FROM api_keys WHERE digest = ?", (digest(key),)
        )
        row = rows[0] if rows else None
        if row is None or not hmac.compare_digest(row["digest"], digest(key)):
            return None
        info = _info(row)
        return info if info.active else None

    def active_digest(self, key_id: str) -> tuple[KeyInfo, str] | None:
        """An active key's info and stored hash by its id (what a console session is bound
        to), or None when there is no such key or it is revoked."""
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS}, digest FROM api_keys WHERE key_id = ? AND revoked_at IS NULL",
                (key_id,),
            ).fetchone()
        return None if row is None else (_info(row), row["digest"])

    def list(self) -> list[KeyInfo]:
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, key_id"
            ).fetchall()
        return [_info(row) for row in rows]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by id; False if there is no such active key."""
        with self._db.write() as conn:
            cursor = conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (int(time.time()), key_id),
            )
            return cursor.rowcount == 1

    def has_admin(self) -> bool:
        with self._db.read() as conn:
            query = "SELECT 1 AS one FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL"
            return conn.execute(query).fetchone() is not None

    def ensure_admin_key(self, key_file: Path) -> str | None:
        """On the first start of the first replica: create an admin key and write it to
        ``key_file`` (mode 0600). Returns the new key, or None when an admin key exists.

        Replicas starting together take turns on an advisory lock, so one of them creates
        the key (in its own data directory) and the others find it."""
        with self._db.write(lock=ADMIN_KEY_LOCK) as conn:
            query = "SELECT 1 AS one FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL"
            if conn.execute(query).fetchone() is not None:
                return None
            info, key = new_key("admin", "created on first start")
            conn.execute(
                f"INSERT INTO api_keys ({_COLUMNS}, digest) VALUES (?, ?, ?, ?, NULL, ?)",
                (info.key_id, info.role, info.name, info.created_at, digest(key)),
            )
            write_key_file(key_file, key)
        return key

"""Console sessions for private deployments: a browser signs in once with an API key and then
carries a cookie, since it cannot send a bearer key on its own.

The cookie never holds the key, nor anything that works as one elsewhere: it is
``<key id>.<expiry>.<MAC>``, the MAC an HMAC-SHA256 under a per-data-directory secret over the
key id, the expiry and the key's stored hash. So a session ends when it expires, when its key is
revoked (the key's row is read on every request), and when the secret file is deleted (every
session at once). It is ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's
page sends it) and ``Secure`` over HTTPS.

A session only reads: :class:`~api.auth.AuthGate` lets it stand for its key with the ``auditor``
role at most, whatever the key's own role, so no write and no administration is ever made on a
cookie; those keep needing the ``Authorization`` header.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import replace
from pathlib import Path

from api.auth import SESSION_COOKIE
from api.keys import ApiKeys, KeyInfo

__all__ = ["COOKIE", "SESSION_ROLE", "Sessions"]

COOKIE = SESSION_COOKIE
SESSION_ROLE = "auditor"


class Sessions:
    """Issues and checks console session cookies for the keys of ``keys``."""

    def __init__(self, keys: ApiKeys, secret_path: Path, *, max_age: int) -> None:
        self.keys, self.secret_path, self.max_age = keys, Path(secret_path), max_age
        self._secret: bytes | None = None
        self._lock = threading.Lock()

    def issue(self, key: str, now: float | None = None) -> tuple[KeyInfo, str] | None:
        """The key's info and a cookie value for it, or None for an unknown or revoked key."""
        info = self.keys.authenticate(key)
        if info is None:
            return None
        expires = int(now if now is not None else time.time()) + self.max_age
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return info, f"{info.key_id}.{expires}.{self._mac(info.key_id, expires, digest)}"

    def check(self, cookie: str, now: float | None = None) -> KeyInfo | None:
        """The key a cookie stands for, its role capped at :data:`SESSION_ROLE`; None when the
        cookie is malformed, forged, expired, or its key is revoked."""
        key_id, _, rest = cookie.partition(".")
        expiry, _, mac = rest.partition(".")
        if not (key_id and expiry.isdigit() and mac):
            return None
        expires = int(expiry)
        if expires <= (now if now is not None else time.time()):
            return None
        found = self.keys.active_digest(key_id)
        if found is None:
            return None
        info, digest = found
        if not hmac.compare_digest(mac, self._mac(key_id, expires, digest)):
            return None
        return replace(info, role=SESSION_ROLE)

    def _mac(self, key_id: str, expires: int, digest: str) -> str:
        message = f"{key_id}.{expires}.{digest}".encode()
        return hmac.new(self._key(), message, hashlib.sha256).hexdigest()

    def _key(self) -> bytes:
        """The secret, made on first use (mode 0600) beside the key store."""
        with self._lock:
            if self._secret is None:
                try:
                    self._secret = bytes.fromhex(self.secret_path.read_text().strip())
                except (FileNotFoundError, ValueError):
                    value = secrets.token_hex(32)
                    fd = os.open(self.secret_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    with os.fdopen(fd, "w") as f:
                        f.write(value + "\n")
                    self._secret = bytes.fromhex(value)
            return self._secret

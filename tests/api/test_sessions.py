"""Console sessions (api/sessions.py): a cookie over the key's hash, never the key; it expires,
dies with its key, cannot be forged or stretched, and only ever reads."""

from __future__ import annotations

from pathlib import Path

from api.keys import KeyStore
from api.sessions import SESSION_ROLE, Sessions


def make(tmp_path: Path, max_age: int = 600) -> tuple[KeyStore, Sessions]:
    keys = KeyStore(tmp_path / "keys.sqlite3")
    return keys, Sessions(keys, tmp_path / "session.secret", max_age=max_age)


def test_a_session_stands_for_its_key_as_an_auditor_until_it_expires(tmp_path: Path) -> None:
    keys, sessions = make(tmp_path)
    info, key = keys.create("admin", "ops")
    issued = sessions.issue(key, now=1_000)
    assert issued is not None
    _, cookie = issued
    assert key not in cookie and key.split("_")[-1] not in cookie
    found = sessions.check(cookie, now=1_500)
    assert found is not None and found.key_id == info.key_id and found.role == SESSION_ROLE
    assert sessions.check(cookie, now=1_600) is None  # expired at issue + max_age
    assert (tmp_path / "session.secret").stat().st_mode & 0o777 == 0o600


def test_a_session_dies_with_its_key_and_cannot_be_forged(tmp_path: Path) -> None:
    keys, sessions = make(tmp_path)
    info, key = keys.create("auditor")
    assert sessions.issue("pl_00000000_wrong") is None
    _, cookie = sessions.issue(key, now=1_000) or ("", "")
    key_id, expiry, mac = cookie.split(".")
    assert sessions.check(f"{key_id}.{int(expiry) + 10_000}.{mac}", now=1_000) is None
    assert sessions.check(f"{key_id}.{expiry}.{'0' * 64}", now=1_000) is None
    assert sessions.check("garbage", now=1_000) is None
    other = Sessions(keys, tmp_path / "other.secret", max_age=600)
    assert other.check(cookie, now=1_000) is None  # another secret: no session
    assert keys.revoke(info.key_id)
    assert sessions.check(cookie, now=1_000) is None

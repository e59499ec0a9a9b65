"""What the console's routes share: the service, the access rule, hashes in paths."""

from __future__ import annotations

from fastapi import HTTPException, Request

from api.service import Service
from ledger.records import hash_hex

__all__ = ["page_hash", "service_of"]


def service_of(request: Request) -> Service:
    """The service the app's lifespan opened (pages read only through its parts)."""
    return request.app.state.service


def page_hash(value: str, what: str) -> str:
    """``value`` as ``0x``-lowercase hex, or a 404 page saying it is not a hash at all: a
    console URL names a record, and a malformed one names none."""
    try:
        return hash_hex(value)
    except ValueError:
        raise HTTPException(
            404, f"{value!r} is not a {what}: 0x followed by 64 hex digits"
        ) from None

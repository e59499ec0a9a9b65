"""Dependencies, declared once as ``Annotated`` aliases: the service, path and paging
parameters, and the access rule each route states in its own signature."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Depends, Path, Query, Request, Response

from api.auth import NEEDS_ADMIN, NEEDS_REGISTRAR, READ, KeyInfo
from api.schemas import ADDRESS_PATTERN, HASH_PATTERN
from api.service import Service, Written
from api.settings import Settings, get_settings

__all__ = [
    "AddressPath",
    "AdminAccess",
    "HashPath",
    "Limit",
    "Offset",
    "ReadAccess",
    "RegistrarAccess",
    "ServiceDep",
    "SettingsDep",
    "answer_written",
]

T = TypeVar("T")


def get_service(request: Request) -> Service:
    """The service opened by the app's lifespan."""
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

ReadAccess = Annotated[KeyInfo | None, Depends(READ)]
RegistrarAccess = Annotated[KeyInfo | None, Depends(NEEDS_REGISTRAR)]
AdminAccess = Annotated[KeyInfo | None, Depends(NEEDS_ADMIN)]

HashPath = Annotated[str, Path(pattern=HASH_PATTERN, description="0x + 64 hex digits")]
AddressPath = Annotated[str, Path(pattern=ADDRESS_PATTERN, description="0x + 40 hex digits")]
Offset = Annotated[int, Query(ge=0, le=10**9)]
Limit = Annotated[int, Query(ge=1, le=500)]


def answer_written(written: Written[T], response: Response) -> T:
    """201 for a new record, 200 (and no transaction was sent) for one that already existed."""
    if not written.created:
        response.status_code = 200
    return written.view

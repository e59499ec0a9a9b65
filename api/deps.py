"""Dependencies, declared once as ``Annotated`` aliases: the service, the pool for expensive
work, path and paging parameters, and the access rule each route states in its own signature."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from api.auth import NEEDS_ADMIN, NEEDS_AUDITOR, NEEDS_REGISTRAR, READ
from api.jobs import WorkPool
from api.keys import KeyInfo
from api.schemas import ADDRESS_PATTERN, HASH_PATTERN
from api.schemas._common import _Public
from api.schemas.accepted import WAIT_DESCRIPTION, Wait
from api.service import Service, Written
from api.settings import Settings

__all__ = [
    "AddressPath",
    "AdminAccess",
    "AuditorAccess",
    "HashPath",
    "JobIdPath",
    "Limit",
    "Offset",
    "ReadAccess",
    "RegistrarAccess",
    "ServiceDep",
    "SettingsDep",
    "WaitQuery",
    "WorkDep",
    "answer_accepted",
    "answer_written",
]

T = TypeVar("T")


async def get_service(request: Request) -> Service:
    """The service opened by the app's lifespan (``async``: a plain ``def`` dependency costs
    every request a hop to the thread pool and back, for an attribute read)."""
    return request.app.state.service


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was made with (``create_app``). Read from the app, not through
    ``app.dependency_overrides``: while that mapping holds anything, FastAPI rebuilds every
    dependency of every request from its signature (``inspect.signature``), about a tenth of
    a 1-row prediction's CPU (issue 26)."""
    return request.app.state.settings


async def get_work(request: Request) -> WorkPool:
    """The app's pool for expensive work (``api/jobs.py``)."""
    return request.app.state.work


ServiceDep = Annotated[Service, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
WorkDep = Annotated[WorkPool, Depends(get_work)]

ReadAccess = Annotated[KeyInfo | None, Depends(READ)]
AuditorAccess = Annotated[KeyInfo | None, Depends(NEEDS_AUDITOR)]
RegistrarAccess = Annotated[KeyInfo | None, Depends(NEEDS_REGISTRAR)]
AdminAccess = Annotated[KeyInfo | None, Depends(NEEDS_ADMIN)]

HashPath = Annotated[str, Path(pattern=HASH_PATTERN, description="0x + 64 hex digits")]
AddressPath = Annotated[str, Path(pattern=ADDRESS_PATTERN, description="0x + 40 hex digits")]
JobIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", description="16 hex digits")]
Offset = Annotated[int, Query(ge=0, le=10**9)]
Limit = Annotated[int, Query(ge=1, le=500)]
# every write takes it, so every write refuses a bad value with the same 422 problem
WaitQuery = Annotated[Wait, Query(description=WAIT_DESCRIPTION)]


def answer_written(written: Written[T], response: Response) -> T:
    """201 for a new record, 200 (and no transaction was sent) for one that already existed."""
    if not written.created:
        response.status_code = 200
    return written.view


def answer_accepted(accepted: _Public) -> JSONResponse:
    """202 for a write answered on acceptance, with ``Location`` = its ``url`` to poll."""
    url = accepted.url  # type: ignore[attr-defined]
    return JSONResponse(accepted.model_dump(), status_code=202, headers={"Location": url})

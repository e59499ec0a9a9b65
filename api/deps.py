"""Dependencies, declared once as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response

from api.service import ProvenanceService, Written
from api.settings import Settings, get_settings

__all__ = ["HashPath", "Limit", "Offset", "ServiceDep", "SettingsDep", "answer_written"]


def get_service(request: Request) -> ProvenanceService:
    """The service opened by the app's lifespan."""
    return request.app.state.service


ServiceDep = Annotated[ProvenanceService, Depends(get_service)]
HashPath = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="0x + 64 hex")]
Offset = Annotated[int, Query(ge=0, le=10**9)]
Limit = Annotated[int, Query(ge=1, le=500)]


def answer_written(written: Written, response: Response) -> dict:
    """201 for a new record, 200 (and no transaction was sent) for one that already existed."""
    if not written.created:
        response.status_code = 200
    return written.view


SettingsDep = Annotated[Settings, Depends(get_settings)]

"""Dependencies, declared once as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.service import ProvenanceService
from api.settings import Settings, get_settings

__all__ = ["ServiceDep", "SettingsDep"]


def get_service(request: Request) -> ProvenanceService:
    """The service opened by the app's lifespan."""
    return request.app.state.service


ServiceDep = Annotated[ProvenanceService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

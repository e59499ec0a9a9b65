"""Where the ledger lives."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ReadAccess, ServiceDep
from api.schemas import ChainPublic

router = APIRouter(prefix="/chain", tags=["chain"])


@router.get("", response_model=ChainPublic)
def get_chain(service: ServiceDep, _: ReadAccess) -> ChainPublic:
    """Backend, chain id, contract address and version, latest and indexed block, registrar."""
    return service.admin.chain()

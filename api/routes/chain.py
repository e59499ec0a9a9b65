"""Where the ledger lives."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ServiceDep
from api.schemas import ChainPublic

router = APIRouter(prefix="/chain", tags=["chain"])


@router.get("", response_model=ChainPublic)
def get_chain(service: ServiceDep) -> dict:
    """Backend, chain id, contract address and version, latest and indexed block, registrar."""
    return service.chain_info()

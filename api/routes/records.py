"""Any record: revoke."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import HashPath, ServiceDep
from api.schemas import RevokeCreate

router = APIRouter(prefix="/records", tags=["records"])


@router.post("/{record_hash}/revoke")
def revoke_record(service: ServiceDep, record_hash: HashPath, body: RevokeCreate) -> dict:
    """Revoke a dataset, model or prediction batch for good; answers the updated record."""
    return service.revoke(record_hash, body.reason)

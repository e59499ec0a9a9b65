"""Any record: read by hash, revoke."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import HashPath, ReadAccess, RegistrarAccess, ServiceDep
from api.schemas import RecordPublic, RevokeCreate

router = APIRouter(prefix="/records", tags=["records"])


@router.get("/{record_hash}", response_model=RecordPublic)
def get_record(service: ServiceDep, _: ReadAccess, record_hash: HashPath) -> RecordPublic:
    """A dataset, model or prediction batch by hash, with its ``kind``."""
    return service.records.get(record_hash)


@router.post("/{record_hash}/revoke", response_model=RecordPublic)
def revoke_record(
    service: ServiceDep, _: RegistrarAccess, record_hash: HashPath, body: RevokeCreate
) -> RecordPublic:
    """Revoke a dataset, model or prediction batch for good; answers the updated record."""
    return service.records.revoke(record_hash, body.reason)

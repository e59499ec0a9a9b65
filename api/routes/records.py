"""Any record: read by hash, revoke."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import HashPath, ReadAccess, RegistrarAccess, ServiceDep, WaitQuery, answer_accepted
from api.schemas import RecordPublic, RevokeCreate
from api.schemas.accepted import RevocationAcceptedPublic

router = APIRouter(prefix="/records", tags=["records"])


@router.get("/{record_hash}", response_model=RecordPublic)
def get_record(service: ServiceDep, _: ReadAccess, record_hash: HashPath) -> RecordPublic:
    """A dataset, model or prediction batch by hash, with its ``kind``."""
    return service.records.get(record_hash)


@router.post(
    "/{record_hash}/revoke",
    response_model=RecordPublic,
    responses={
        202: {"model": RevocationAcceptedPublic, "description": "durably queued (wait=accepted)"}
    },
)
def revoke_record(
    service: ServiceDep,
    _: RegistrarAccess,
    record_hash: HashPath,
    body: RevokeCreate,
    wait: WaitQuery = "final",
) -> RecordPublic | JSONResponse:
    """Revoke a dataset, model or prediction batch for good; answers the updated record."""
    answer = service.records.revoke(record_hash, body.reason, wait=wait)
    if isinstance(answer, RevocationAcceptedPublic):
        return answer_accepted(answer)
    return answer

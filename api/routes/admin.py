"""Administration: on-chain registrars, API keys, and tamper detection (admin keys only).

Every path parameter is checked by its pattern before the route runs (``AddressPath``,
``KeyIdPath``), so a malformed one is a 422, never a failure further in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from api.deps import AddressPath, AdminAccess, ServiceDep, WaitQuery, WorkDep, answer_accepted
from api.schemas import (
    FsckPublic,
    KeyCreate,
    KeyCreatedPublic,
    KeyRevokedPublic,
    KeysPublic,
    RegistrarChangePublic,
    RegistrarCreate,
    RegistrarPublic,
)
from api.schemas.accepted import RegistrarAcceptedPublic

router = APIRouter(prefix="/admin", tags=["admin"])
KeyIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{8}$", description="8 hex digits")]


@router.post(
    "/registrars",
    response_model=RegistrarChangePublic,
    responses={
        202: {"model": RegistrarAcceptedPublic, "description": "durably queued (wait=accepted)"}
    },
)
def change_registrar(
    service: ServiceDep, _: AdminAccess, body: RegistrarCreate, wait: WaitQuery = "final"
) -> RegistrarChangePublic | JSONResponse:
    """Grant or revoke ``REGISTRAR_ROLE`` on chain for an address."""
    answer = service.admin.change_registrar(body.address, grant=body.action == "grant", wait=wait)
    if isinstance(answer, RegistrarAcceptedPublic):
        return answer_accepted(answer)
    return answer


@router.get("/registrars/{address}", response_model=RegistrarPublic)
def get_registrar(service: ServiceDep, _: AdminAccess, address: AddressPath) -> RegistrarPublic:
    """Whether an address holds ``REGISTRAR_ROLE``, and every change of it on chain."""
    return service.admin.registrar(address)


@router.post("/keys", status_code=201, response_model=KeyCreatedPublic)
def create_key(service: ServiceDep, _: AdminAccess, body: KeyCreate) -> KeyCreatedPublic:
    """A new API key; its secret is in this answer and nowhere else."""
    return service.admin.create_key(body.role, body.name)


@router.get("/keys", response_model=KeysPublic)
def list_keys(service: ServiceDep, _: AdminAccess) -> KeysPublic:
    return service.admin.keys()


@router.delete("/keys/{key_id}", response_model=KeyRevokedPublic)
def revoke_key(service: ServiceDep, _: AdminAccess, key_id: KeyIdPath) -> KeyRevokedPublic:
    return service.admin.revoke_key(key_id)


@router.get("/fsck", response_model=FsckPublic)
def check_everything(service: ServiceDep, key: AdminAccess, work: WorkDep) -> FsckPublic:
    """Re-hash every artifact and compare the index with the chain's events (expensive: it
    runs in the bounded pool, and past its bound the answer is 429 with ``Retry-After``)."""
    return work.run("fsck", key, lambda _job: service.admin.fsck())

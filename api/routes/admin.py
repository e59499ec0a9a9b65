"""Administration: on-chain registrars, API keys, and tamper detection (admin keys only)."""

from __future__ import annotations

from typing import Literal

from eth_utils import to_checksum_address
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from api.auth import ROLES, KeyStore
from api.deps import ServiceDep
from api.problems import Problem
from ledger.fsck import fsck

router = APIRouter(prefix="/admin", tags=["admin"])


class RegistrarCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    action: Literal["grant", "revoke"] = "grant"


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["auditor", "registrar", "admin"]
    name: str = Field("", max_length=200)


def _keys(request: Request) -> KeyStore:
    return request.app.state.keys


@router.post("/registrars")
def change_registrar(service: ServiceDep, body: RegistrarCreate) -> dict:
    """Grant or revoke ``REGISTRAR_ROLE`` on chain for an address."""
    client = service.client
    tx = (client.grant_registrar if body.action == "grant" else client.revoke_registrar)(
        body.address
    )
    return {
        "address": body.address,
        "registrar": client.is_registrar(body.address),
        "tx_hash": tx.tx_hash,
        "block_number": tx.block_number,
    }


@router.get("/registrars/{address}")
def get_registrar(service: ServiceDep, address: str) -> dict:
    if not (address.startswith("0x") and len(address) == 42):
        raise Problem(422, "invalid-address", "an address is 0x followed by 40 hex digits")
    checksummed = to_checksum_address(address)
    return {
        "address": checksummed,
        "registrar": service.client.is_registrar(checksummed),
        "history": [
            {"block_number": block, "log_index": log_index, "granted": granted}
            for block, log_index, granted in service.client.registrar_history(checksummed)
        ],
    }


@router.post("/keys", status_code=201)
def create_key(request: Request, body: KeyCreate) -> dict:
    """A new API key; its secret is in this answer and nowhere else."""
    info, key = _keys(request).create(body.role, body.name)
    return {"key_id": info.key_id, "role": info.role, "name": info.name, "key": key}


@router.get("/keys")
def list_keys(request: Request) -> dict:
    keys = _keys(request).list()
    return {
        "data": [
            {"key_id": k.key_id, "role": k.role, "name": k.name, "created_at": k.created_at,
             "revoked_at": k.revoked_at}
            for k in keys
        ],
        "count": len(keys),
        "roles": list(ROLES),
    }  # fmt: skip


@router.delete("/keys/{key_id}")
def revoke_key(request: Request, key_id: str) -> dict:
    if not _keys(request).revoke(key_id):
        raise Problem(404, "unknown-key", f"no active key {key_id}")
    return {"key_id": key_id, "revoked": True}


@router.get("/fsck")
def check_everything(service: ServiceDep) -> dict:
    """Re-hash every artifact and compare the index with the chain's events."""
    findings = fsck(service.store, service.index, service.client)
    return {"ok": not findings, "findings": [f.to_json() for f in findings]}

"""The chain's coordinates, health, on-chain registrars, API keys and fsck."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from api.schemas._common import (
    Address,
    BlockNumber,
    Hash,
    Role,
    UnixTime,
    _Create,
    _Public,
)

__all__ = [
    "ChainPublic",
    "FindingPublic",
    "FsckPublic",
    "GenerationPublic",
    "HealthPublic",
    "KeyCreate",
    "KeyCreatedPublic",
    "KeyPublic",
    "KeyRevokedPublic",
    "KeysPublic",
    "RegistrarChangePublic",
    "RegistrarCreate",
    "RegistrarPublic",
    "ReorgPublic",
    "RoleChangePublic",
]

# -- chain and administration ----------------------------------------------------------------


class GenerationPublic(_Public):
    """One contract generation of the ledger (README, "Upgrading the contract")."""

    address: Address
    first_block: BlockNumber = Field(description="the block it was deployed in")
    last_block: BlockNumber | None = Field(
        None, description="the block before its successor's deployment; null while newest"
    )


class ChainPublic(_Public):
    backend: Literal["embedded", "rpc"]
    chain_id: int = Field(ge=1)
    contract_address: Address
    contract_version: str
    latest_block: BlockNumber
    indexed_block: BlockNumber | None
    registrar: Address
    registrar_has_role: bool
    confirmations: int = Field(ge=0, description="blocks on top of a write's before it is final")
    deepest_reorg: int = Field(
        0, ge=0, description="the deepest reorganisation seen to take a write or a final block"
    )
    deepest_reorg_past_final: ReorgPublic | None = None
    generations: list[GenerationPublic] = Field(
        default_factory=list,
        description="every contract generation, oldest first; writes go to the newest "
        "(contract_address), reads follow all of them",
    )


class ReorgPublic(_Public):
    """A reorganisation past the final depth: blocks the service had called final left the
    canonical chain."""

    fork_block: int = Field(ge=-1)
    last_block: BlockNumber
    depth: int = Field(ge=0, description="final blocks orphaned")
    transactions: int = Field(ge=0)
    resent: int = Field(ge=0, description="the service's own transactions sent again")
    seen_at: UnixTime


class HealthPublic(_Public):
    status: Literal["ok", "degraded"]
    latest_block: BlockNumber
    problems: list[str] = Field(default_factory=list, description="why it is degraded")


class RegistrarCreate(_Create):
    address: Address
    action: Literal["grant", "revoke"] = "grant"


class RegistrarChangePublic(_Public):
    address: Address
    registrar: bool
    tx_hash: Hash
    block_number: BlockNumber


class RoleChangePublic(_Public):
    block_number: BlockNumber
    log_index: int = Field(ge=0)
    granted: bool


class RegistrarPublic(_Public):
    address: Address
    registrar: bool
    history: list[RoleChangePublic]


class KeyCreate(_Create):
    role: Role
    name: str = Field("", description="at most max_name_chars characters")


class _Key(_Public):
    key_id: str = Field(pattern=r"^[0-9a-f]{8}$")
    role: Role
    name: str


class KeyPublic(_Key):
    created_at: UnixTime
    revoked_at: UnixTime | None = None


class KeyCreatedPublic(_Key):
    key: str = Field(description="the secret, shown once")


class KeysPublic(_Public):
    data: list[KeyPublic]
    count: int = Field(ge=0)
    roles: list[Role]


class KeyRevokedPublic(_Public):
    key_id: str
    revoked: Literal[True]


class FindingPublic(_Public):
    kind: str
    subject: str
    expected: str | None = None
    found: str | None = None
    detail: str


class FsckPublic(_Public):
    ok: bool
    findings: list[FindingPublic]

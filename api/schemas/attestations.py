"""The attestation key and its on-chain binding (``GET /v1/attestation-key``)."""

from __future__ import annotations

from pydantic import Field

from api.schemas._common import Address, Hash, _Public

__all__ = ["AttestationKeyPublic", "KeyBindingPublic"]


class KeyBindingPublic(_Public):
    """The registrar's EIP-712 signature over ``AttestationKey(keyDigest, issuedAt)`` in the
    ledger's domain: whoever recovers ``registrar`` from it and finds ``REGISTRAR_ROLE`` on chain
    may trust the key."""

    public_key_pem: str = Field(max_length=1_000)
    key_digest: Hash
    registrar: Address
    chain_id: int = Field(ge=1)
    contract: Address
    issued_at: int = Field(ge=0)
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")


class AttestationKeyPublic(_Public):
    public_key_pem: str = Field(max_length=1_000, description="P-256, SubjectPublicKeyInfo PEM")
    key_digest: Hash = Field(description="0x + SHA-256 of the key's DER SubjectPublicKeyInfo")
    binding: KeyBindingPublic

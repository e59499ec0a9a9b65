"""The attestation key, and the binding that lets the chain vouch for it.

Why a second key: the tools of the in-toto, SLSA and OpenSSF world (``securesystemslib``,
``model_signing``, ``cosign``) verify NIST curves, Ed25519 and RSA, and refuse secp256k1, the
curve of the service's chain key. So attestations are signed with a P-256 key of their own, kept
like the service key: beside it in the data directory, readable only by its owner, and
encrypted with the keystore's password when the service runs against a real node.

Why an auditor can trust it without trusting the operator: the **binding** is an EIP-712 message
``AttestationKey(bytes32 keyDigest, uint64 issuedAt)`` in the ledger's own domain (its chain id
and contract, as receipts are), signed by the service's chain key. ``keyDigest`` is the SHA-256
of the public key (DER SubjectPublicKeyInfo). A verifier recovers the signer from the message
and asks the chain whether that account holds ``REGISTRAR_ROLE`` (:func:`check_binding`): the
same authority that registers records vouches for the key.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount

from ledger.errors import LedgerError
from ledger.formats.receipts import ReceiptDomain
from ledger.storage._files import write_atomic

__all__ = [
    "AttestationError",
    "AttestationKey",
    "KeyBinding",
    "check_binding",
    "public_key_digest",
]

_TYPES = {
    "AttestationKey": [
        {"name": "keyDigest", "type": "bytes32"},
        {"name": "issuedAt", "type": "uint64"},
    ]
}


class AttestationError(LedgerError):
    """An attestation or its key does not verify; ``reason`` names the check that failed
    (``key_binding``, ``signature``, ``subject``, ``dependencies``, ``registered``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason=reason)
        self.reason = reason


def public_key_digest(public_pem: str) -> str:
    """``0x`` + SHA-256 of the key's DER SubjectPublicKeyInfo (what the binding signs)."""
    try:
        key = serialization.load_pem_public_key(public_pem.encode())
    except ValueError as exc:
        raise AttestationError("key_binding", f"not a PEM public key: {exc}") from None
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "0x" + hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class KeyBinding:
    """The registrar's signed statement that ``public_key_pem`` attests for its ledger."""

    public_key_pem: str
    key_digest: str
    registrar: str
    chain_id: int
    contract: str
    issued_at: int
    signature: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> KeyBinding:
        try:
            return cls(
                public_key_pem=str(data["public_key_pem"]),
                key_digest=str(data["key_digest"]),
                registrar=str(data["registrar"]),
                chain_id=int(data["chain_id"]),
                contract=str(data["contract"]),
                issued_at=int(data["issued_at"]),
                signature=str(data["signature"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AttestationError("key_binding", f"not a key binding: {exc!r}") from None

    def _message(self) -> Any:
        domain = ReceiptDomain(self.chain_id, self.contract)
        return encode_typed_data(
            domain_data=domain.to_eip712(),
            message_types=_TYPES,
            message_data={
                "keyDigest": bytes.fromhex(self.key_digest.removeprefix("0x")),
                "issuedAt": self.issued_at,
            },
        )

    def signer(self) -> str:
        """The account that signed the binding (checks the key digest first)."""
        if public_key_digest(self.public_key_pem) != self.key_digest:
            raise AttestationError(
                "key_binding", "the binding's key digest is not the digest of its public key"
            )
        try:
            return Account.recover_message(self._message(), signature=self.signature)
        except Exception as exc:  # eth-account raises several kinds for a bad signature
            raise AttestationError("key_binding", f"the binding's signature: {exc}") from None


def check_binding(binding: KeyBinding, *, chain_id: int, contract: str, holds_role: Any) -> str:
    """Verify ``binding`` for the ledger at ``contract`` on ``chain_id``: the digest is its key's,
    the signer is its ``registrar``, and the chain says that account holds ``REGISTRAR_ROLE``
    (``holds_role(address) -> bool``, read from a node). Returns the registrar."""
    if binding.chain_id != chain_id or binding.contract.lower() != contract.lower():
        raise AttestationError(
            "key_binding",
            f"the key is bound to the ledger {binding.contract} on chain {binding.chain_id}, "
            f"not {contract} on chain {chain_id}",
        )
    signer = binding.signer()
    if signer.lower() != binding.registrar.lower():
        raise AttestationError(
            "key_binding", f"the binding was signed by {signer}, not by {binding.registrar}"
        )
    if not holds_role(signer):
        raise AttestationError(
            "key_binding", f"{signer}, who signed the binding, holds no REGISTRAR_ROLE on chain"
        )
    return signer


class AttestationKey:
    """The service's P-256 attestation key (see the module docstring)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        self._private_key = private_key

    def __repr__(self) -> str:  # never the private part
        return f"AttestationKey({self.digest})"

    @classmethod
    def load_or_create(cls, path: Path, password: str | None = None) -> AttestationKey:
        """The key at ``path`` (PKCS#8 PEM, encrypted with ``password`` when one is given),
        made on first use and written readable by its owner only."""
        secret = password.encode() if password else None
        if not path.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            encryption = (
                serialization.BestAvailableEncryption(secret)
                if secret
                else serialization.NoEncryption()
            )
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
            )
            write_atomic(path, pem, mode=0o600)
        try:
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=secret)
        except (TypeError, ValueError) as exc:
            raise AttestationError(
                "key_binding", f"{path} is not a readable P-256 key (wrong password?): {exc}"
            ) from None
        if not isinstance(loaded, ec.EllipticCurvePrivateKey) or loaded.curve.name != ("secp256r1"):
            raise AttestationError("key_binding", f"{path} does not hold a P-256 key")
        return cls(loaded)

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        return self._private_key

    @property
    def public_pem(self) -> str:
        return (
            self._private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    @property
    def digest(self) -> str:
        return public_key_digest(self.public_pem)

    def bind(self, registrar: LocalAccount, domain: ReceiptDomain, issued_at: int) -> KeyBinding:
        """The binding of this key, signed by ``registrar`` (the service's chain key)."""
        unsigned = KeyBinding(
            public_key_pem=self.public_pem,
            key_digest=self.digest,
            registrar=registrar.address,
            chain_id=domain.chain_id,
            contract=domain.verifying_contract,
            issued_at=issued_at,
            signature="",
        )
        signed = registrar.sign_message(unsigned._message())
        return KeyBinding(**{**unsigned.to_json(), "signature": "0x" + signed.signature.hex()})

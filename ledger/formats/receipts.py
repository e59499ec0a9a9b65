"""Prediction receipts: what the service hands a client for every prediction, signed so that
anyone can later prove which model said what, when, to whom, without trusting the operator.

A receipt binds a model hash, the SHA-256 of the input row and the SHA-256 of the output (both
over canonical JSON) to a time and the service's address, and is signed as EIP-712 typed data::

    PredictionReceipt(bytes32 receiptId, bytes32 modelHash, bytes32 inputHash,
                      bytes32 outputHash, uint64 issuedAt, address service)

under the domain ``{name: "ProvenanceLedger", version: "1", chainId, verifyingContract}``. EIP-712
means a wallet, ethers' ``verifyTypedData`` or Solidity's ``ECDSA.recover`` can check the same
signature; the domain pins it to one contract on one chain, so it cannot be replayed elsewhere.

**Format 2** (the default since issue 26) signs a whole request once: the request's receipts are
the leaves of a StandardMerkleTree (the same leaf as below), whose root is signed as::

    PredictionReceiptRoot(bytes32 root)

under the same domain, and each receipt carries ``format: 2``, that ``signed_root`` and its
``signed_proof`` (the sibling hashes from its leaf to the root), so every row still verifies on
its own: fold the leaf up the proof, compare with ``signed_root``, recover the signer of the
root's digest. A format-1 receipt (no ``format`` field, or ``format: 1``) is signed alone, as
above, and keeps verifying everywhere. The two digests have different type hashes, so a
signature of one format can never pass for the other's.

Receipts are then anchored in Merkle batches; :func:`receipt_leaf` gives the leaf values in
:data:`RECEIPT_LEAF_ENCODING` for :class:`ledger.formats.merkle.StandardMerkleTree`.

Canonical JSON and the hex form of a hash are :mod:`ml.hashing`'s, the one home of both formats
(``ml.hashing`` imports nothing heavy, and ``ml`` never imports ``ledger``); a value that has no
canonical form raises its :class:`~ml.errors.CanonicalJsonError`. Checking a receipt against the
chain, signature included, is :func:`ledger.verify.verify_receipt`.

Signing is on the prediction path, so the digest is computed here with keccak and signed with
``coincurve`` directly (thousands per second) in :mod:`ledger.formats.receipt_signing`; the tests
check this digest and signature against eth-account's ``encode_typed_data`` /
``sign_typed_data``. That is why the module runs past 400 lines: the field encodings, the digest
and the leaf are one format, and they are kept side by side so that they cannot drift apart.
The fast leaf hash a bulk audit needs (:func:`receipt_leaf_hash`) lives here for the same
reason; the fast parser is :mod:`ledger.formats.receipt_parsing`. Both are tested against the
general paths.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any

from eth_hash.auto import keccak
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from ledger.formats._receipt_fields import MAX_UINT64 as _MAX_UINT64
from ledger.formats._receipt_fields import (
    Address,
    Bytes32,
    InvalidSignatureError,
    OutputHashMismatch,
    ReceiptError,
    ReceiptFormatError,
    Signature,
)
from ledger.formats._receipt_fields import to_address as _to_address
from ledger.formats.merkle import process_proof
from ml.hashing import CanonicalJsonError, canonical_json, to_hex

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "RECEIPT_LEAF_ENCODING",
    "RECEIPT_TYPE",
    "ROOT_TYPE",
    "InvalidSignatureError",
    "OutputHashMismatch",
    "Receipt",
    "ReceiptDomain",
    "ReceiptError",
    "ReceiptFormatError",
    "input_hash",
    "new_receipt_id",
    "new_receipt_ids",
    "output_hash",
    "receipt_digest",
    "receipt_leaf",
    "receipt_leaf_hash",
    "root_digest",
    "signed_root_of",
    "typed_data",
]

DOMAIN_NAME = "ProvenanceLedger"
DOMAIN_VERSION = "1"
RECEIPT_TYPE = (
    "PredictionReceipt(bytes32 receiptId,bytes32 modelHash,bytes32 inputHash,"
    "bytes32 outputHash,uint64 issuedAt,address service)"
)
ROOT_TYPE = "PredictionReceiptRoot(bytes32 root)"
MAX_SIGNED_PROOF = 32
"""Nodes a ``signed_proof`` may hold: a request of up to 2**32 rows (bounds a verifier's work)."""
RECEIPT_LEAF_ENCODING = ("bytes32", "bytes32", "bytes32", "bytes32", "uint256", "address")

_DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
_DOMAIN_TYPEHASH = keccak(_DOMAIN_TYPE.encode())
_RECEIPT_TYPEHASH = keccak(RECEIPT_TYPE.encode())
_ROOT_TYPEHASH = keccak(ROOT_TYPE.encode())
_NAME_HASH = keccak(DOMAIN_NAME.encode())
_VERSION_HASH = keccak(DOMAIN_VERSION.encode())


# --------------------------------------------------------------------------------------------
# Hashing of JSON values
# --------------------------------------------------------------------------------------------


def input_hash(row: Mapping[str, Any]) -> bytes:
    """SHA-256 of the input row as canonical JSON, so a client can recompute it from its request.

    ``1`` and ``1.0`` hash differently; send the row exactly as the model received it.

    Raises:
        CanonicalJsonError: ``row`` is not an object, or holds a value with no canonical form.
    """
    if not isinstance(row, Mapping):
        raise CanonicalJsonError(f"an input row is a JSON object, got {type(row).__name__}")
    return hashlib.sha256(canonical_json(row)).digest()


def output_hash(output: Any) -> bytes:
    """SHA-256 of a prediction output (a number, a label, a dict...) as canonical JSON.

    Raises:
        CanonicalJsonError: ``output`` holds a value with no canonical form (NaN, bytes...).
    """
    return hashlib.sha256(canonical_json(output)).digest()


def new_receipt_id() -> bytes:
    """A fresh receipt id: :func:`new_receipt_ids` of one."""
    return new_receipt_ids(1)[0]


def new_receipt_ids(n: int) -> list[bytes]:
    """``n`` fresh receipt ids: each the issuing time in microseconds (8 bytes, big-endian)
    followed by 24 random bytes, as UUIDv7 and ULID are made.

    The 192 random bits keep an id unguessable and, in practice, unique without coordination
    (several replicas issue into one book). The time in front is why: a receipt book keeps an
    index on ids, and random ids put each new receipt on a random page of it, so that a commit
    of a hundred receipts rewrote a hundred index pages (twice SQLite's CPU per receipt, and
    more as the book grows); time-ordered ids are appended at the index's end. The time is
    no secret: the receipt says when it was issued.
    """
    prefix = (time.time_ns() // 1000).to_bytes(8, "big")
    randomness = secrets.token_bytes(24 * n)
    return [prefix + randomness[k : k + 24] for k in range(0, 24 * n, 24)]


# --------------------------------------------------------------------------------------------
# Domain and digest
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptDomain:
    """The EIP-712 domain: receipts are valid for one ledger contract on one chain only."""

    chain_id: int
    verifying_contract: str

    def __post_init__(self) -> None:
        if type(self.chain_id) is not int or not 0 < self.chain_id < 2**256:
            raise ReceiptFormatError(f"chain_id must be a positive int, got {self.chain_id!r}")
        checksummed = _to_address(self.verifying_contract, "verifying_contract")
        object.__setattr__(self, "verifying_contract", checksummed)

    @cached_property
    def separator(self) -> bytes:
        """The EIP-712 domain separator (``hashStruct(domain)``)."""
        return keccak(
            _DOMAIN_TYPEHASH
            + _NAME_HASH
            + _VERSION_HASH
            + self.chain_id.to_bytes(32, "big")
            + bytes(12)
            + bytes.fromhex(self.verifying_contract[2:])
        )

    def to_eip712(self) -> dict[str, Any]:
        """The domain as EIP-712 JSON (for eth-account, ethers or a wallet)."""
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


def _digest(
    domain: ReceiptDomain,
    receipt_id: bytes,
    model_hash: bytes,
    input_hash_: bytes,
    output_hash_: bytes,
    issued_at: int,
    service: str,
) -> bytes:
    struct_hash = keccak(
        _RECEIPT_TYPEHASH
        + receipt_id
        + model_hash
        + input_hash_
        + output_hash_
        + issued_at.to_bytes(32, "big")
        + bytes(12)
        + bytes.fromhex(service[2:])
    )
    return keccak(b"\x19\x01" + domain.separator + struct_hash)


def root_digest(domain: ReceiptDomain, root: bytes) -> bytes:
    """The EIP-712 digest a format-2 signature signs: ``PredictionReceiptRoot(root)``."""
    return keccak(b"\x19\x01" + domain.separator + keccak(_ROOT_TYPEHASH + root))


# --------------------------------------------------------------------------------------------
# The receipt
# --------------------------------------------------------------------------------------------


class Receipt(BaseModel):
    """A signed prediction receipt. Hashes are bytes in Python and 0x-hex in JSON.

    ``format`` is 1 (signed alone; ``signed_root`` and ``signed_proof`` are None) or 2 (signed
    with its request: both are set). Constructing one checks field formats only;
    :meth:`from_json` also checks that ``output`` still hashes to ``output_hash``;
    :func:`recover_signer` says who signed it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    receipt_id: Bytes32
    model_hash: Bytes32
    input_hash: Bytes32
    output: Any
    output_hash: Bytes32
    issued_at: Annotated[int, Field(strict=True, ge=0, le=_MAX_UINT64)]
    service: Address
    signature: Signature
    format: Annotated[int, Field(strict=True, ge=1, le=2)] = 1
    signed_root: Bytes32 | None = None
    signed_proof: Annotated[tuple[Bytes32, ...], Field(max_length=MAX_SIGNED_PROOF)] | None = None

    @field_validator("output")
    @classmethod
    def _output_is_json(cls, value: Any) -> Any:
        canonical_json(value)
        return value

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A format-1 receipt dumps without the format-2 fields: its JSON never changed."""
        fields = handler(self)
        if self.format == 1:
            for name in ("format", "signed_root", "signed_proof"):
                fields.pop(name, None)
        return fields

    @model_validator(mode="after")
    def _format_fields(self) -> Receipt:
        signed = (self.signed_root is not None, self.signed_proof is not None)
        if self.format == 2 and signed != (True, True):
            raise ValueError("a format-2 receipt carries signed_root and signed_proof")
        if self.format == 1 and signed != (False, False):
            raise ValueError("a format-1 receipt carries no signed_root or signed_proof")
        return self

    def check_output_hash(self) -> None:
        """Raise :class:`OutputHashMismatch` if ``output`` no longer hashes to ``output_hash``."""
        actual = output_hash(self.output)
        if actual != self.output_hash:
            raise OutputHashMismatch(
                f"receipt {to_hex(self.receipt_id)}: output hashes to {to_hex(actual)}, "
                f"but the receipt says {to_hex(self.output_hash)}"
            )

    def json_fields(self) -> dict[str, Any]:
        """The receipt's fields in JSON form, as ``model_dump(mode="json")`` gives them, built
        directly (the prediction path answers a hundred of these per request)."""
        return {
            "receipt_id": to_hex(self.receipt_id),
            "model_hash": to_hex(self.model_hash),
            "input_hash": to_hex(self.input_hash),
            "output": self.output,
            "output_hash": to_hex(self.output_hash),
            "issued_at": self.issued_at,
            "service": self.service,
            "signature": to_hex(self.signature),
            **self._format_fields_json(),
        }

    def _format_fields_json(self) -> dict[str, Any]:
        """A format-2 receipt's own fields (none for format 1, whose JSON never changes)."""
        if self.format == 1:
            return {}
        return {
            "format": self.format,
            "signed_root": to_hex(self.signed_root or b""),
            "signed_proof": [to_hex(node) for node in self.signed_proof or ()],
        }

    def to_json(self) -> str:
        """The receipt as canonical JSON text (the same receipt always gives the same text):
        ``canonical_json(model_dump(mode="json"))``, written out field by field in canonical
        (sorted) key order, since only the output needs the encoder."""
        output = canonical_json(self.output).decode("utf-8")
        if self.format == 1:
            head, tail = "{", "}"
        else:
            proof = ",".join(f'"{to_hex(node)}"' for node in self.signed_proof or ())
            head = f'{{"format":{self.format},'
            tail = f',"signed_proof":[{proof}],"signed_root":"{to_hex(self.signed_root or b"")}"}}'
        return (
            f'{head}"input_hash":"{to_hex(self.input_hash)}","issued_at":{self.issued_at},'
            f'"model_hash":"{to_hex(self.model_hash)}","output":{output},'
            f'"output_hash":"{to_hex(self.output_hash)}",'
            f'"receipt_id":"{to_hex(self.receipt_id)}","service":"{self.service}",'
            f'"signature":"{to_hex(self.signature)}"{tail}'
        )

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any]) -> Receipt:
        """Parse a receipt and check its output against its output hash.

        Raises:
            ReceiptFormatError: the text is not JSON or a field is missing or malformed.
            OutputHashMismatch: the output was altered after signing.
        """
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise ReceiptFormatError(f"a receipt must be JSON: {exc}") from None
        if not isinstance(data, Mapping):
            raise ReceiptFormatError(f"a receipt is a JSON object, got {type(data).__name__}")
        try:
            receipt = cls.model_validate(dict(data))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'receipt'}: {e['msg']}" for e in exc.errors()
            )
            raise ReceiptFormatError(f"malformed receipt: {problems}") from None
        receipt.check_output_hash()
        return receipt


def receipt_digest(receipt: Receipt, domain: ReceiptDomain) -> bytes:
    """The 32-byte EIP-712 digest the receipt's signature signs (for format 2, the digest of
    the ``signed_root`` it names: :func:`signed_root_of` says whether its fields lead there)."""
    if receipt.format == 2:
        return root_digest(domain, receipt.signed_root or b"")
    return _digest(
        domain,
        receipt.receipt_id,
        receipt.model_hash,
        receipt.input_hash,
        receipt.output_hash,
        receipt.issued_at,
        receipt.service,
    )


def signed_root_of(receipt: Receipt) -> bytes:
    """The root a format-2 receipt's leaf and ``signed_proof`` lead to (``MerkleProof``'s
    ``processProof``): its fields are what was signed only if this is its ``signed_root``."""
    return process_proof(receipt_leaf_hash(receipt), receipt.signed_proof or ())


def typed_data(receipt: Receipt, domain: ReceiptDomain) -> dict[str, Any]:
    """The full EIP-712 message, for verifying a receipt with other tools (eth-account, ethers)."""
    if receipt.format == 2:
        return {
            "types": {"EIP712Domain": _DOMAIN_FIELDS, "PredictionReceiptRoot": _ROOT_FIELDS},
            "primaryType": "PredictionReceiptRoot",
            "domain": domain.to_eip712(),
            "message": {"root": to_hex(receipt.signed_root or b"")},
        }
    return {
        "types": {
            "EIP712Domain": _DOMAIN_FIELDS,
            "PredictionReceipt": [
                {"name": "receiptId", "type": "bytes32"},
                {"name": "modelHash", "type": "bytes32"},
                {"name": "inputHash", "type": "bytes32"},
                {"name": "outputHash", "type": "bytes32"},
                {"name": "issuedAt", "type": "uint64"},
                {"name": "service", "type": "address"},
            ],
        },
        "primaryType": "PredictionReceipt",
        "domain": domain.to_eip712(),
        "message": {
            "receiptId": to_hex(receipt.receipt_id),
            "modelHash": to_hex(receipt.model_hash),
            "inputHash": to_hex(receipt.input_hash),
            "outputHash": to_hex(receipt.output_hash),
            "issuedAt": receipt.issued_at,
            "service": receipt.service,
        },
    }


_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
_ROOT_FIELDS = [{"name": "root", "type": "bytes32"}]


def receipt_leaf_hash(
    receipt: Receipt, *, double_keccak: Callable[[bytes], bytes] | None = None
) -> bytes:
    """The receipt's StandardMerkleTree leaf hash, ``keccak256(keccak256(abi.encode(leaf)))``
    over :data:`RECEIPT_LEAF_ENCODING`: every field is one static ABI word, so the encoding is
    the words side by side (a test checks it against :func:`ledger.formats.merkle.leaf_hash`).

    ``double_keccak`` may do the hashing (a bulk run passes ``ledger.formats._keccak``'s native leaf
    hasher); by default it is ``eth_hash`` twice."""
    encoded = (
        receipt.receipt_id
        + receipt.model_hash
        + receipt.input_hash
        + receipt.output_hash
        + receipt.issued_at.to_bytes(32, "big")
        + bytes(12)
        + bytes.fromhex(receipt.service[2:])
    )
    return double_keccak(encoded) if double_keccak is not None else keccak(keccak(encoded))


def receipt_leaf(receipt: Receipt) -> list[Any]:
    """The receipt's Merkle leaf values, in :data:`RECEIPT_LEAF_ENCODING` order (JSON-ready)."""
    return [
        to_hex(receipt.receipt_id),
        to_hex(receipt.model_hash),
        to_hex(receipt.input_hash),
        to_hex(receipt.output_hash),
        receipt.issued_at,
        receipt.service,
    ]

"""Prediction receipts: what the service hands a client for every prediction, signed so that
anyone can later prove which model said what, when, to whom, without trusting the operator.

A receipt binds a model hash, the SHA-256 of the input row and the SHA-256 of the output (both
over canonical JSON) to a time and the service's address, and is signed as EIP-712 typed data::

    PredictionReceipt(bytes32 receiptId, bytes32 modelHash, bytes32 inputHash,
                      bytes32 outputHash, uint64 issuedAt, address service)

under the domain ``{name: "ProvenanceLedger", version: "1", chainId, verifyingContract}``. EIP-712
means a wallet, ethers' ``verifyTypedData`` or Solidity's ``ECDSA.recover`` can check the same
signature; the domain pins it to one contract on one chain, so it cannot be replayed elsewhere.

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
The fast paths a bulk audit needs (:func:`parse_receipt`, :func:`receipt_leaf_hash`) live here
for the same reason, beside the rules they must mirror, each tested against the general path.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Annotated, Any

from eth_hash.auto import keccak
from eth_utils import is_checksum_address, to_checksum_address
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

from ledger.errors import LedgerError
from ml.hashing import CanonicalJsonError, canonical_json, to_hex

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "RECEIPT_LEAF_ENCODING",
    "RECEIPT_TYPE",
    "InvalidSignatureError",
    "OutputHashMismatch",
    "Receipt",
    "ReceiptDomain",
    "ReceiptError",
    "ReceiptFormatError",
    "input_hash",
    "new_receipt_id",
    "output_hash",
    "parse_receipt",
    "receipt_digest",
    "receipt_leaf",
    "receipt_leaf_hash",
    "typed_data",
]

DOMAIN_NAME = "ProvenanceLedger"
DOMAIN_VERSION = "1"
RECEIPT_TYPE = (
    "PredictionReceipt(bytes32 receiptId,bytes32 modelHash,bytes32 inputHash,"
    "bytes32 outputHash,uint64 issuedAt,address service)"
)
RECEIPT_LEAF_ENCODING = ("bytes32", "bytes32", "bytes32", "bytes32", "uint256", "address")

_DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
_DOMAIN_TYPEHASH = keccak(_DOMAIN_TYPE.encode())
_RECEIPT_TYPEHASH = keccak(RECEIPT_TYPE.encode())
_NAME_HASH = keccak(DOMAIN_NAME.encode())
_VERSION_HASH = keccak(DOMAIN_VERSION.encode())
_MAX_UINT64 = 2**64 - 1
_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})*")


class ReceiptError(LedgerError, ValueError):
    """Root of everything this module rejects."""


class ReceiptFormatError(ReceiptError):
    """A receipt, a field of one, a domain or a key is malformed."""


class OutputHashMismatch(ReceiptError):
    """A receipt's output does not hash to its ``output_hash``: the output was altered."""


class InvalidSignatureError(ReceiptError):
    """A signature is malformed, malleable (high s) or recovers no key."""


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
    """32 random bytes: unguessable and, in practice, unique without coordination."""
    return secrets.token_bytes(32)


# --------------------------------------------------------------------------------------------
# Field types
# --------------------------------------------------------------------------------------------


def _to_bytes(value: Any, size: int, what: str) -> bytes:
    if isinstance(value, str):
        if not _HEX.fullmatch(value):
            raise ReceiptFormatError(f"{what} must be 0x-prefixed hex, got {value!r}")
        value = bytes.fromhex(value[2:])
    elif isinstance(value, bytearray | memoryview):
        value = bytes(value)
    elif not isinstance(value, bytes):
        raise ReceiptFormatError(f"{what} must be bytes or 0x-hex, got {type(value).__name__}")
    if len(value) != size:
        raise ReceiptFormatError(f"{what} must be {size} bytes, got {len(value)}")
    return value


def _to_address(value: Any, what: str) -> str:
    if isinstance(value, bytes | bytearray) and len(value) == 20:
        return to_checksum_address(bytes(value))
    if not isinstance(value, str) or not re.fullmatch(r"0x[0-9a-fA-F]{40}", value):
        raise ReceiptFormatError(f"{what} must be a 20-byte 0x-hex address, got {value!r}")
    body = value[2:]
    if body.lower() != body and body.upper() != body and not is_checksum_address(value):
        raise ReceiptFormatError(f"{what} {value} has a bad EIP-55 checksum")
    return to_checksum_address(value)


def _to_uint64(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value <= _MAX_UINT64:
        raise ReceiptFormatError(f"{what} must be an int in [0, 2**64), got {value!r}")
    return value


def _bytes_field(size: int) -> Any:
    pattern = f"^0x[0-9a-f]{{{2 * size}}}$"
    return Annotated[
        bytes,
        BeforeValidator(lambda v: _to_bytes(v, size, f"a {size}-byte value")),
        PlainSerializer(to_hex, return_type=str, when_used="json"),
        WithJsonSchema({"type": "string", "pattern": pattern}),
    ]


Bytes32 = _bytes_field(32)
Signature = _bytes_field(65)
Address = Annotated[
    str,
    BeforeValidator(lambda v: _to_address(v, "an address")),
    WithJsonSchema({"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}),
]


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


# --------------------------------------------------------------------------------------------
# The receipt
# --------------------------------------------------------------------------------------------


class Receipt(BaseModel):
    """A signed prediction receipt. Hashes are bytes in Python and 0x-hex in JSON.

    Constructing one checks field formats only; :meth:`from_json` also checks that ``output``
    still hashes to ``output_hash``; :func:`recover_signer` says who signed it.
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

    @field_validator("output")
    @classmethod
    def _output_is_json(cls, value: Any) -> Any:
        canonical_json(value)
        return value

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
        }

    def to_json(self) -> str:
        """The receipt as canonical JSON text (the same receipt always gives the same text):
        ``canonical_json(model_dump(mode="json"))``, written out field by field in canonical
        (sorted) key order, since only the output needs the encoder."""
        output = canonical_json(self.output).decode("utf-8")
        return (
            f'{{"input_hash":"{to_hex(self.input_hash)}","issued_at":{self.issued_at},'
            f'"model_hash":"{to_hex(self.model_hash)}","output":{output},'
            f'"output_hash":"{to_hex(self.output_hash)}",'
            f'"receipt_id":"{to_hex(self.receipt_id)}","service":"{self.service}",'
            f'"signature":"{to_hex(self.signature)}"}}'
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
    """The 32-byte EIP-712 digest the receipt's signature signs."""
    return _digest(
        domain,
        receipt.receipt_id,
        receipt.model_hash,
        receipt.input_hash,
        receipt.output_hash,
        receipt.issued_at,
        receipt.service,
    )


def typed_data(receipt: Receipt, domain: ReceiptDomain) -> dict[str, Any]:
    """The full EIP-712 message, for verifying a receipt with other tools (eth-account, ethers)."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
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


_HEX32 = re.compile(r"0x[0-9a-fA-F]{64}")
_HEX65 = re.compile(r"0x[0-9a-fA-F]{130}")
_BYTES32_FIELDS = ("receipt_id", "model_hash", "input_hash", "output_hash")


@lru_cache(maxsize=256)
def _service_address(value: str) -> str:
    """A receipt's ``service`` field, checked and checksummed (cached: a batch has one)."""
    return _to_address(value, "service")


def parse_receipt(fields: Mapping[str, Any]) -> Receipt:
    """The receipt whose fields are ``fields`` (exactly :class:`Receipt`'s), as
    ``Receipt.model_validate`` would build it, but a few times faster for the common,
    well-formed case: a bulk audit parses a hundred thousand of them. Anything unusual (a
    missing or extra field, bytes given as bytes, an upper-case prefix) goes through
    ``model_validate`` itself, so the two accept and refuse exactly the same documents (a test
    holds them to it). The output is not hashed here: verification does that once.

    Raises:
        ReceiptFormatError: a field is missing or malformed (``model_validate``'s message).
    """
    try:
        if len(fields) == 8:
            values = {}
            for name in _BYTES32_FIELDS:
                text = fields[name]
                if type(text) is not str or not _HEX32.fullmatch(text):
                    raise LookupError(name)
                values[name] = bytes.fromhex(text[2:])
            signature, issued_at, service = (
                fields["signature"], fields["issued_at"], fields["service"]
            )  # fmt: skip
            if type(signature) is not str or not _HEX65.fullmatch(signature):
                raise LookupError("signature")
            if type(issued_at) is not int or not 0 <= issued_at <= _MAX_UINT64:
                raise LookupError("issued_at")
            if type(service) is not str:
                raise LookupError("service")
            output = fields["output"]
            canonical_json(output)  # the one rule pydantic checks on it
            return Receipt.model_construct(
                **values,
                output=output,
                issued_at=issued_at,
                service=_service_address(service),
                signature=bytes.fromhex(signature[2:]),
            )
    except (LookupError, ValueError):
        pass  # not the common case: let pydantic say exactly what is wrong
    try:
        return Receipt.model_validate(dict(fields))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'receipt'}: {e['msg']}" for e in exc.errors()
        )
        raise ReceiptFormatError(f"malformed receipt: {problems}") from None


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

"""A receipt's field types and the errors of the receipt format: kept apart from
:mod:`ledger.formats.receipts` so that the format itself (fields, digests, leaf) stays one
readable page. Private: import the public names from :mod:`ledger.formats.receipts`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from eth_utils import is_checksum_address, to_checksum_address
from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from ledger.errors import LedgerError
from ml.hashing import to_hex

__all__ = [
    "MAX_UINT64",
    "Address",
    "Bytes32",
    "InvalidSignatureError",
    "OutputHashMismatch",
    "ReceiptError",
    "ReceiptFormatError",
    "Signature",
    "to_address",
    "to_bytes",
    "to_uint64",
]

MAX_UINT64 = 2**64 - 1
_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})*")


class ReceiptError(LedgerError, ValueError):
    """Root of everything this module rejects."""


class ReceiptFormatError(ReceiptError):
    """A receipt, a field of one, a domain or a key is malformed."""


class OutputHashMismatch(ReceiptError):
    """A receipt's output does not hash to its ``output_hash``: the output was altered."""


class InvalidSignatureError(ReceiptError):
    """A signature is malformed, malleable (high s) or recovers no key."""


def to_bytes(value: Any, size: int, what: str) -> bytes:
    """``value`` (bytes or 0x-hex) as exactly ``size`` bytes, or :class:`ReceiptFormatError`."""
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


def to_address(value: Any, what: str) -> str:
    """``value`` as a checksum address; a mixed-case address must have a valid checksum."""
    if isinstance(value, bytes | bytearray) and len(value) == 20:
        return to_checksum_address(bytes(value))
    if not isinstance(value, str) or not re.fullmatch(r"0x[0-9a-fA-F]{40}", value):
        raise ReceiptFormatError(f"{what} must be a 20-byte 0x-hex address, got {value!r}")
    body = value[2:]
    if body.lower() != body and body.upper() != body and not is_checksum_address(value):
        raise ReceiptFormatError(f"{what} {value} has a bad EIP-55 checksum")
    return to_checksum_address(value)


def to_uint64(value: Any, what: str) -> int:
    """``value`` if it is an int (not a bool) in ``[0, 2**64)``."""
    if type(value) is not int or not 0 <= value <= MAX_UINT64:
        raise ReceiptFormatError(f"{what} must be an int in [0, 2**64), got {value!r}")
    return value


def _bytes_field(size: int) -> Any:
    pattern = f"^0x[0-9a-f]{{{2 * size}}}$"
    return Annotated[
        bytes,
        BeforeValidator(lambda v: to_bytes(v, size, f"a {size}-byte value")),
        PlainSerializer(to_hex, return_type=str, when_used="json"),
        WithJsonSchema({"type": "string", "pattern": pattern}),
    ]


Bytes32 = _bytes_field(32)
Signature = _bytes_field(65)
Address = Annotated[
    str,
    BeforeValidator(lambda v: to_address(v, "an address")),
    WithJsonSchema({"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}),
]

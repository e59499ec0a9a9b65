"""Typed values read from the chain: stored records, write results and decoded events.

Hashes are 0x-prefixed lowercase hex strings throughout, the form a person can paste into
`cast`, a block explorer or ``sha256sum``'s output (with the prefix)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "ZERO_HASH",
    "ChainRecord",
    "DatasetRegistered",
    "LedgerEvent",
    "ModelRegistered",
    "PredictionsAnchored",
    "RecordKind",
    "RecordRevoked",
    "RoleChanged",
    "TxResult",
    "hash_hex",
]

ZERO_HASH = "0x" + "00" * 32
_HEX32 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


def hash_hex(value: bytes | str) -> str:
    """Normalise a 32-byte hash given as bytes or hex (with or without 0x) to 0x-lowercase hex."""
    if isinstance(value, bytes | bytearray):
        if len(value) != 32:
            raise ValueError(f"a hash is 32 bytes, got {len(value)}")
        return "0x" + bytes(value).hex()
    if not isinstance(value, str) or not _HEX32.match(value):
        raise ValueError(f"a hash is 0x followed by 64 hex digits, got {value!r}")
    return "0x" + value.removeprefix("0x").lower()


class RecordKind(IntEnum):
    """Mirrors the contract's ``RecordKind`` enum."""

    NONE = 0
    DATASET = 1
    MODEL = 2
    BATCH = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class ChainRecord:
    """The stored part of a record: what the contract itself checks."""

    record_hash: str
    kind: RecordKind
    revoked: bool
    registered_at: int
    registrant: str


@dataclass(frozen=True)
class TxResult:
    """A mined, successful write."""

    tx_hash: str
    block_number: int
    gas_used: int


@dataclass(frozen=True)
class LedgerEvent:
    """Where an event sits on the chain; every decoded event carries this."""

    tx_hash: str
    block_number: int
    log_index: int


@dataclass(frozen=True)
class DatasetRegistered(LedgerEvent):
    content_hash: str
    registrant: str
    rows_root: str
    row_count: int
    schema_hash: str
    metadata_hash: str
    parents: tuple[str, ...]
    transform_hash: str


@dataclass(frozen=True)
class ModelRegistered(LedgerEvent):
    model_hash: str
    registrant: str
    datasets: tuple[str, ...]
    metadata_hash: str


@dataclass(frozen=True)
class PredictionsAnchored(LedgerEvent):
    root: str
    model_hash: str
    registrant: str
    count: int


@dataclass(frozen=True)
class RecordRevoked(LedgerEvent):
    record_hash: str
    revoker: str
    kind: RecordKind
    reason: str


@dataclass(frozen=True)
class RoleChanged(LedgerEvent):
    """An AccessControl ``RoleGranted`` (``granted``) or ``RoleRevoked`` event."""

    role: str
    account: str
    granted: bool

"""Typed values that cross the chain boundary: the inputs of batch writes, stored records,
write results and decoded events.

Hashes are 0x-prefixed lowercase hex strings throughout, the form a person can paste into
`cast`, a block explorer or ``sha256sum``'s output (with the prefix)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

from ml.hashing import to_hex

__all__ = [
    "ZERO_HASH",
    "AnchorInput",
    "ChainRecord",
    "DatasetInput",
    "DatasetRegistered",
    "LedgerEvent",
    "ModelInput",
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
        return to_hex(value)
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


def _normalise(item: object, *fields: str) -> None:
    """Store each hash field of a frozen input as 0x-lowercase hex; a malformed one raises
    ValueError when the input is made, before it can spoil a whole batch."""
    for name in fields:
        object.__setattr__(item, name, hash_hex(getattr(item, name)))


def _check_uint64(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise ValueError(f"{what} is a uint64, got {value!r}")


@dataclass(frozen=True)
class DatasetInput:
    """One dataset of :meth:`LedgerClient.register_datasets`: the contract's ``DatasetInput``.

    Hashes may be given as bytes or hex and are kept as 0x-hex; a derived dataset names its
    parents and its transform's hash, raw data neither (the contract checks that pairing)."""

    content_hash: str
    rows_root: str
    row_count: int
    schema_hash: str
    metadata_hash: str = ZERO_HASH
    parents: tuple[str, ...] = ()
    transform_hash: str = ZERO_HASH

    def __post_init__(self) -> None:
        _normalise(
            self, "content_hash", "rows_root", "schema_hash", "metadata_hash", "transform_hash"
        )
        object.__setattr__(self, "parents", tuple(hash_hex(p) for p in self.parents))
        _check_uint64(self.row_count, "row_count")


@dataclass(frozen=True)
class ModelInput:
    """One model of :meth:`LedgerClient.register_models`: the contract's ``ModelInput``."""

    model_hash: str
    datasets: tuple[str, ...]
    metadata_hash: str

    def __post_init__(self) -> None:
        _normalise(self, "model_hash", "metadata_hash")
        object.__setattr__(self, "datasets", tuple(hash_hex(d) for d in self.datasets))


@dataclass(frozen=True)
class AnchorInput:
    """One prediction batch of :meth:`LedgerClient.anchor_prediction_batches`: the contract's
    ``AnchorInput``; the batch id is ``root``."""

    model_hash: str
    root: str
    count: int

    def __post_init__(self) -> None:
        _normalise(self, "model_hash", "root")
        _check_uint64(self.count, "count")


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
    """The contract's ``RecordRevoked`` event. Event classes carry the contract's event names
    (``LedgerClient`` finds an event's topic by its class); the exception raised when a write
    refers to a revoked record is :class:`ledger.errors.RecordIsRevoked`, the contract's error."""

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

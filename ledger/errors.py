"""One root exception for everything the ledger says no to, and a decoder for the contract's
custom errors, so callers catch ``UnknownDataset`` instead of parsing revert data."""

from __future__ import annotations

from typing import Any

from eth_abi import decode
from eth_utils import function_signature_to_4byte_selector

from ml.hashing import to_hex

__all__ = [
    "AlreadyRegistered",
    "AlreadyRevoked",
    "BatchAlreadyAnchored",
    "ChainUnavailable",
    "DatasetAlreadyRegistered",
    "DeploymentMismatch",
    "FeeAboveCeiling",
    "GasLimitExceeded",
    "InvalidRecord",
    "LedgerError",
    "ModelAlreadyRegistered",
    "NotAuthorized",
    "RecordIsRevoked",
    "RecordPending",
    "TransactionFailed",
    "UnknownBatch",
    "UnknownDataset",
    "UnknownModel",
    "UnknownRecord",
    "decode_revert",
]

# The contract's RecordKind enum, by value.
KIND_NAMES = ("none", "dataset", "model", "batch")


class LedgerError(Exception):
    """Root of every ledger failure. ``hint`` says what a person can do about it."""

    hint = ""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.context = context

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} ({self.hint})" if self.hint else text


class InvalidRecord(LedgerError, ValueError):
    """The contract rejected the record's fields (zero hash, empty batch, no reason...)."""


class AlreadyRegistered(LedgerError):
    """A record with this hash exists already; records are write-once."""


class DatasetAlreadyRegistered(AlreadyRegistered):
    """The dataset hash is registered already."""


class ModelAlreadyRegistered(AlreadyRegistered):
    """The model hash is registered already."""


class BatchAlreadyAnchored(AlreadyRegistered):
    """A batch with this Merkle root is anchored already."""


class UnknownRecord(LedgerError, LookupError):
    """No record of the expected kind is registered under this hash."""


class UnknownDataset(UnknownRecord):
    """No dataset is registered under this hash."""


class UnknownModel(UnknownRecord):
    """No model is registered under this hash."""


class UnknownBatch(UnknownRecord):
    """No prediction batch is anchored under this root."""


class RecordPending(UnknownRecord):
    """The record's write was accepted but the canonical chain does not hold it: queued, in a
    node's pool, or sent again after a reorganisation took its block away. It is not
    registered (a subclass of :class:`UnknownRecord`, so nothing treats it as registered);
    ``waiting_for`` says what holds it up, when something does (a fee over the ceiling)."""

    hint = "its write is in flight: ask again in a few blocks"
    chain_status = "pending"

    def __init__(self, message: str, *, waiting_for: str | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.waiting_for = waiting_for


class FeeAboveCeiling(LedgerError):
    """The chain's fees are above the operator's ceiling (``PROVENANCE_MAX_FEE_PER_GAS``):
    nothing is signed above it; the write waits, and goes out when the fees fall."""

    hint = "it goes out when the base fee falls; or raise PROVENANCE_MAX_FEE_PER_GAS"

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message, **context)
        self.ceiling = context.get("ceiling")


class RecordIsRevoked(LedgerError):
    """The record is revoked and nothing new may be built on it."""


class AlreadyRevoked(RecordIsRevoked):
    """The record was revoked before; a revocation happens once."""


class NotAuthorized(LedgerError, PermissionError):
    """The signing account lacks the role, or is not the record's registrant."""

    hint = "an admin can grant REGISTRAR_ROLE to this account"


class TransactionFailed(LedgerError):
    """A transaction was mined but reverted, or never got a receipt."""


class GasLimitExceeded(LedgerError, ValueError):
    """A write needs more gas than one block holds: nothing was sent."""

    hint = "send fewer records per batch"


class ChainUnavailable(LedgerError, ConnectionError):
    """The chain node cannot be reached."""

    hint = "check that the node is running and PROVENANCE_RPC_URL is right"


class DeploymentMismatch(LedgerError):
    """The code at the recorded contract address is not the committed artifact."""

    hint = "redeploy with `provenance deploy`, or point the data directory at the right chain"


def _already(args: tuple[Any, ...]) -> LedgerError:
    record_hash, kind = args
    cls = {1: DatasetAlreadyRegistered, 2: ModelAlreadyRegistered, 3: BatchAlreadyAnchored}.get(
        kind, AlreadyRegistered
    )
    return cls(
        f"{to_hex(record_hash)} is already registered as a {KIND_NAMES[kind]}",
        record_hash=to_hex(record_hash),
        kind=KIND_NAMES[kind],
    )


def _unknown(args: tuple[Any, ...]) -> LedgerError:
    record_hash, kind = args
    cls = {1: UnknownDataset, 2: UnknownModel, 3: UnknownBatch}.get(kind, UnknownRecord)
    what = "record" if kind == 0 else KIND_NAMES[kind]
    return cls(
        f"no {what} is registered under {to_hex(record_hash)}", record_hash=to_hex(record_hash)
    )


_CUSTOM_ERRORS: dict[str, tuple[list[str], Any]] = {
    "ZeroRecordHash()": ([], lambda a: InvalidRecord("a record hash must not be zero")),
    "RecordAlreadyRegistered(bytes32,uint8)": (["bytes32", "uint8"], _already),
    "UnknownRecord(bytes32,uint8)": (["bytes32", "uint8"], _unknown),
    "RecordIsRevoked(bytes32)": (
        ["bytes32"],
        lambda a: RecordIsRevoked(f"{to_hex(a[0])} is revoked", record_hash=to_hex(a[0])),
    ),
    "RecordAlreadyRevoked(bytes32)": (
        ["bytes32"],
        lambda a: AlreadyRevoked(f"{to_hex(a[0])} was revoked already", record_hash=to_hex(a[0])),
    ),
    "NotRegistrant(bytes32,address)": (
        ["bytes32", "address"],
        lambda a: NotAuthorized(
            f"{a[1]} did not register {to_hex(a[0])} and is not an admin", account=a[1]
        ),
    ),
    "AccessControlUnauthorizedAccount(address,bytes32)": (
        ["address", "bytes32"],
        lambda a: NotAuthorized(
            f"{a[0]} lacks role {to_hex(a[1])}", account=a[0], role=to_hex(a[1])
        ),
    ),
    "AccessControlBadConfirmation()": (
        [],
        lambda a: NotAuthorized("an account can only renounce its own roles"),
    ),
    "InconsistentDerivation(bytes32,uint256,bytes32)": (
        ["bytes32", "uint256", "bytes32"],
        lambda a: InvalidRecord(
            f"dataset {to_hex(a[0])}: a derived dataset needs parents and a transform hash, got "
            f"{a[1]} parents and transform {to_hex(a[2])}",
            record_hash=to_hex(a[0]),
        ),
    ),
    "NoTrainingData(bytes32)": (
        ["bytes32"],
        lambda a: InvalidRecord(
            f"model {to_hex(a[0])}: a model needs at least one dataset", record_hash=to_hex(a[0])
        ),
    ),
    "EmptyBatch(bytes32)": (
        ["bytes32"],
        lambda a: InvalidRecord(
            f"batch {to_hex(a[0])}: a prediction batch needs at least one receipt",
            record_hash=to_hex(a[0]),
        ),
    ),
    "EmptyRecordList()": (
        [],
        lambda a: InvalidRecord("a batch write needs at least one record"),
    ),
    "EmptyReason()": ([], lambda a: InvalidRecord("a revocation needs a reason")),
    "InvalidPredecessor(address)": (
        ["address"],
        lambda a: DeploymentMismatch(
            f"the predecessor {a[0]} holds no code: it cannot be a ledger", address=a[0]
        ),
    ),
}
_BY_SELECTOR = {
    function_signature_to_4byte_selector(sig): (types, build)
    for sig, (types, build) in _CUSTOM_ERRORS.items()
}


def decode_revert(data: bytes) -> LedgerError:
    """Turn revert data from the contract into the matching typed exception."""
    entry = _BY_SELECTOR.get(bytes(data[:4]))
    if entry is None:
        return TransactionFailed(f"the contract reverted with unrecognised data 0x{data.hex()}")
    types, build = entry
    return build(tuple(decode(types, bytes(data[4:]))) if types else ())

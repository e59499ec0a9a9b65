"""What a write is: the inputs the pipeline takes, how each is keyed and named, which contract
call sends a chunk of them, and which write a revert names.

Kept apart from :mod:`ledger.writes.pipeline` so the protocol there (states, threads, nonces)
reads without the per-kind details, and so the rules that pick a culprit from a revert can be
tested on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from eth_utils import to_checksum_address

from ledger.chain._calls import (
    ContractCall,
    anchors_call,
    datasets_call,
    models_call,
    revoke_call,
    role_call,
)
from ledger.errors import ChainUnavailable, InvalidRecord, LedgerError, NotAuthorized, UnknownRecord
from ledger.errors import RecordRevoked as RevokedError
from ledger.records import (
    ZERO_HASH,
    AnchorInput,
    DatasetInput,
    DatasetRegistered,
    LedgerEvent,
    ModelInput,
    ModelRegistered,
    PredictionsAnchored,
    RecordRevoked,
    RoleChanged,
    hash_hex,
)

__all__ = [
    "DEDUPED",
    "ORDER",
    "Included",
    "Keyed",
    "RevokeInput",
    "RoleInput",
    "WriteInput",
    "call_for",
    "calldata_bound",
    "concerns_all",
    "culprit",
    "event_key",
    "key_of",
    "kind_of",
    "refs_of",
]

ORDER = ("dataset", "model", "anchor", "revoke", "role")  # parents before what names them
DEDUPED = frozenset({"dataset", "model", "anchor"})  # write-once records, keyed by their hash


@dataclass(frozen=True)
class RevokeInput:
    """A revocation: one record, for good, with a reason."""

    record_hash: str
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "record_hash", hash_hex(self.record_hash))


@dataclass(frozen=True)
class RoleInput:
    """A registrar change: grant (or revoke) ``REGISTRAR_ROLE`` for ``account``."""

    account: str
    grant: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "account", to_checksum_address(self.account))


WriteInput = DatasetInput | ModelInput | AnchorInput | RevokeInput | RoleInput


@dataclass(frozen=True)
class Included:
    """A write on chain: the event that recorded it (None for a registrar change the contract
    had nothing to do for), its block's time, its transaction, and whether this request made it
    (False: it repeated a write in flight or just done, and nothing more was sent)."""

    event: LedgerEvent | None
    timestamp: int
    tx_hash: str
    block_number: int
    gas_used: int
    created: bool = True


def kind_of(item: WriteInput) -> str:
    """Which batch function (or single call) sends the write."""
    if isinstance(item, DatasetInput):
        return "dataset"
    if isinstance(item, ModelInput):
        return "model"
    if isinstance(item, AnchorInput):
        return "anchor"
    if isinstance(item, RevokeInput):
        return "revoke"
    return "role"


def key_of(item: WriteInput) -> str:
    """What identifies a write: a record's hash, or the revocation or role change itself."""
    if isinstance(item, DatasetInput):
        return item.content_hash
    if isinstance(item, ModelInput):
        return item.model_hash
    if isinstance(item, AnchorInput):
        return item.root
    if isinstance(item, RevokeInput):
        return f"revoke:{item.record_hash}"
    return f"role:{item.account.lower()}:{int(item.grant)}"


def refs_of(item: WriteInput | None) -> tuple[str, ...]:
    """The records a write names besides its own: a revert may name one of them."""
    if isinstance(item, DatasetInput):
        return item.parents
    if isinstance(item, ModelInput):
        return item.datasets
    if isinstance(item, AnchorInput):
        return (item.model_hash,)
    if isinstance(item, RevokeInput):
        return (item.record_hash,)
    return ()


def event_key(event: LedgerEvent) -> str | None:
    """The key (:func:`key_of`) of the write an event records."""
    if isinstance(event, DatasetRegistered):
        return event.content_hash
    if isinstance(event, ModelRegistered):
        return event.model_hash
    if isinstance(event, PredictionsAnchored):
        return event.root
    if isinstance(event, RecordRevoked):
        return f"revoke:{event.record_hash}"
    if isinstance(event, RoleChanged):
        return f"role:{event.account.lower()}:{int(event.granted)}"
    return None


def call_for(kind: str, items: Sequence[WriteInput]) -> ContractCall:
    if kind == "dataset":
        return datasets_call(items)  # type: ignore[arg-type]
    if kind == "model":
        return models_call(items)  # type: ignore[arg-type]
    if kind == "anchor":
        return anchors_call(items)  # type: ignore[arg-type]
    (item,) = items
    if isinstance(item, RevokeInput):
        return revoke_call(item.record_hash, item.reason)
    assert isinstance(item, RoleInput)
    return role_call(item.account, grant=item.grant)


def calldata_bound(item: WriteInput) -> int:
    """Bytes of calldata a record adds to its batch call, exactly as the ABI lays it out: a
    dataset or model is a dynamic tuple (an offset word, its head words, the length and the
    words of its hash list); a prediction batch is three words in place."""
    if isinstance(item, DatasetInput):
        return 32 * (1 + 7 + 1 + len(item.parents))
    if isinstance(item, ModelInput):
        return 32 * (1 + 3 + 1 + len(item.datasets))
    return 32 * 3


class Keyed(Protocol):
    """A write as :func:`culprit` sees it: its key and its record."""

    key: str
    item: WriteInput | None


W = TypeVar("W", bound=Keyed)


def culprit(exc: LedgerError, writes: Sequence[W]) -> W | None:
    """The write a revert names: by its own hash, or by a hash it names (a parent, a training
    dataset, a model); an unknown or revoked input is looked for among the inputs first."""
    named = exc.context.get("record_hash")
    if named is None:
        if isinstance(exc, InvalidRecord):  # ZeroRecordHash names nothing: find the zero
            return next((w for w in writes if w.key == ZERO_HASH), None)
        return None
    own = next((w for w in writes if w.key == named or w.key == f"revoke:{named}"), None)
    named_input = next((w for w in writes if named in refs_of(w.item)), None)
    if isinstance(exc, UnknownRecord | RevokedError):
        return named_input or own
    return own or named_input


def concerns_all(exc: LedgerError) -> bool:
    """Refusals about the sender or the node, not about a record: every write shares them."""
    return isinstance(exc, NotAuthorized | ChainUnavailable)

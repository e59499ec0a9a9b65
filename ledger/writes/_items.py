"""What a write is: the inputs the pipeline takes, how each is keyed and named, which contract
call sends a chunk of them, and which write a revert names.

Kept apart from :mod:`ledger.writes.pipeline` so the protocol there (states, threads, nonces)
reads without the per-kind details, and so the rules that pick a culprit from a revert can be
tested on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

from eth_utils import to_checksum_address

from ledger.chain._calls import (
    ContractCall,
    anchors_call,
    datasets_call,
    models_call,
    revoke_call,
    role_call,
)
from ledger.errors import (
    ChainUnavailable,
    InvalidRecord,
    LedgerError,
    NotAuthorized,
    RecordIsRevoked,
    UnknownRecord,
)
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
    "WRITE_KINDS",
    "Included",
    "Keyed",
    "RevokeInput",
    "RoleInput",
    "WriteInput",
    "WriteKind",
    "call_for",
    "calldata_bound",
    "concerns_all",
    "culprit",
    "event_key",
    "gas_refs_of",
    "key_of",
    "kind_of",
    "refs_of",
]


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


class WriteKind:
    """One kind of write: its input type, the event that records it, its key, the records it
    names, the contract call that sends a chunk of them and the calldata each adds.

    A new kind of write is one subclass, listed in :data:`WRITE_KINDS`; the functions below and the
    pipeline find everything through it."""

    name: ClassVar[str]
    input: ClassVar[type]
    event: ClassVar[type[LedgerEvent]]
    deduped: ClassVar[bool] = False  # a write-once record, keyed by its hash, sent in batches

    def key(self, item: Any) -> str:
        raise NotImplementedError

    def refs(self, item: Any) -> tuple[str, ...]:
        """The records the write names besides its own: a revert may name one of them."""
        return ()

    def gas_refs(self, item: Any) -> int:
        """How many named records the contract reads for it (gas grows with them)."""
        return len(self.refs(item))

    def event_key(self, event: Any) -> str | None:
        raise NotImplementedError

    def call(self, items: Sequence[Any]) -> ContractCall:
        raise NotImplementedError

    def calldata(self, item: Any) -> int:
        """Bytes of calldata the write adds to its batch call, as the ABI lays it out."""
        return 32 * 3


class _Datasets(WriteKind):
    name = "dataset"
    input = DatasetInput
    event = DatasetRegistered
    deduped = True

    def key(self, item: DatasetInput) -> str:
        return item.content_hash

    def refs(self, item: DatasetInput) -> tuple[str, ...]:
        return item.parents

    def event_key(self, event: DatasetRegistered) -> str:
        return event.content_hash

    def call(self, items: Sequence[DatasetInput]) -> ContractCall:
        return datasets_call(items)

    def calldata(self, item: DatasetInput) -> int:
        # a dynamic tuple: an offset word, its head words, the length and words of its list
        return 32 * (1 + 7 + 1 + len(item.parents))


class _Models(WriteKind):
    name = "model"
    input = ModelInput
    event = ModelRegistered
    deduped = True

    def key(self, item: ModelInput) -> str:
        return item.model_hash

    def refs(self, item: ModelInput) -> tuple[str, ...]:
        return item.datasets

    def event_key(self, event: ModelRegistered) -> str:
        return event.model_hash

    def call(self, items: Sequence[ModelInput]) -> ContractCall:
        return models_call(items)

    def calldata(self, item: ModelInput) -> int:
        return 32 * (1 + 3 + 1 + len(item.datasets))


class _Anchors(WriteKind):
    name = "anchor"
    input = AnchorInput
    event = PredictionsAnchored
    deduped = True

    def key(self, item: AnchorInput) -> str:
        return item.root

    def refs(self, item: AnchorInput) -> tuple[str, ...]:
        return (item.model_hash,)

    def gas_refs(self, item: AnchorInput) -> int:
        return 0  # the model is named, but costs no extra gas (see _calls.anchors_call)

    def event_key(self, event: PredictionsAnchored) -> str:
        return event.root

    def call(self, items: Sequence[AnchorInput]) -> ContractCall:
        return anchors_call(items)


class _Revocations(WriteKind):
    name = "revoke"
    input = RevokeInput
    event = RecordRevoked

    def key(self, item: RevokeInput) -> str:
        return f"revoke:{item.record_hash}"

    def refs(self, item: RevokeInput) -> tuple[str, ...]:
        return (item.record_hash,)

    def event_key(self, event: RecordRevoked) -> str:
        return f"revoke:{event.record_hash}"

    def call(self, items: Sequence[RevokeInput]) -> ContractCall:
        (item,) = items
        return revoke_call(item.record_hash, item.reason)


class _Roles(WriteKind):
    name = "role"
    input = RoleInput
    event = RoleChanged

    def key(self, item: RoleInput) -> str:
        return f"role:{item.account.lower()}:{int(item.grant)}"

    def event_key(self, event: RoleChanged) -> str:
        return f"role:{event.account.lower()}:{int(event.granted)}"

    def call(self, items: Sequence[RoleInput]) -> ContractCall:
        (item,) = items
        return role_call(item.account, grant=item.grant)


WRITE_KINDS: tuple[WriteKind, ...] = (_Datasets(), _Models(), _Anchors(), _Revocations(), _Roles())
"""Every kind of write, parents before what names them (the order a round sends them in)."""
_BY_NAME = {kind.name: kind for kind in WRITE_KINDS}
_BY_INPUT = {kind.input: kind for kind in WRITE_KINDS}
_BY_EVENT = {kind.event: kind for kind in WRITE_KINDS}

ORDER = tuple(kind.name for kind in WRITE_KINDS)  # parents before what names them
DEDUPED = frozenset(kind.name for kind in WRITE_KINDS if kind.deduped)  # write-once, keyed by hash


def kind_of(item: WriteInput) -> str:
    """Which batch function (or single call) sends the write."""
    return _BY_INPUT[type(item)].name


def key_of(item: WriteInput) -> str:
    """What identifies a write: a record's hash, or the revocation or role change itself."""
    return _BY_INPUT[type(item)].key(item)


def refs_of(item: WriteInput | None) -> tuple[str, ...]:
    """The records a write names besides its own: a revert may name one of them."""
    return () if item is None else _BY_INPUT[type(item)].refs(item)


def gas_refs_of(item: WriteInput) -> int:
    """How many named records the contract reads for the write (its gas grows with them)."""
    return _BY_INPUT[type(item)].gas_refs(item)


def event_key(event: LedgerEvent) -> str | None:
    """The key (:func:`key_of`) of the write an event records."""
    kind = _BY_EVENT.get(type(event))
    return None if kind is None else kind.event_key(event)


def call_for(kind: str, items: Sequence[WriteInput]) -> ContractCall:
    """The contract call that sends ``items``, all of ``kind``."""
    return _BY_NAME[kind].call(items)


def calldata_bound(item: WriteInput) -> int:
    """Bytes of calldata a record adds to its batch call, exactly as the ABI lays it out: a
    dataset or model is a dynamic tuple (an offset word, its head words, the length and the
    words of its hash list); a prediction batch is three words in place."""
    return _BY_INPUT[type(item)].calldata(item)


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
    if isinstance(exc, UnknownRecord | RecordIsRevoked):
        return named_input or own
    return own or named_input


def concerns_all(exc: LedgerError) -> bool:
    """Refusals about the sender or the node, not about a record: every write shares them."""
    return isinstance(exc, NotAuthorized | ChainUnavailable)

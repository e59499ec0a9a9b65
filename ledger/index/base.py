"""What an event index answers, and the interface every index implements.

The records are values built from the contract's events: the record's own fields, where and
when the chain registered it (:class:`Registration`) and, once it is revoked, where and when and
why (:class:`Revocation`). Composing the two keeps the registration/revocation fields in one
place instead of repeating them in every record type.

:class:`EventIndex` lists exactly what the flows (the service, lineage, fsck) ask of an index,
so that another storage (PostgreSQL, for several service replicas) can be added beside the
SQLite :class:`ledger.index.sqlite.LedgerIndex` without touching them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from ledger.chain.client import LedgerClient
from ledger.errors import LedgerError

__all__ = [
    "EventIndex",
    "IndexMismatch",
    "IndexedBatch",
    "IndexedDataset",
    "IndexedModel",
    "IndexedRecord",
    "RecordKindName",
    "Registration",
    "Revocation",
    "indexed_record",
]

RecordKindName = Literal["dataset", "model", "batch"]


class IndexMismatch(LedgerError):
    """The index holds another contract's or another chain's events, or the chain it indexed no
    longer has the block the index last saw."""

    hint = "rebuild the index from the chain you mean (LedgerIndex.rebuild), or fix the node URL"


@dataclass(frozen=True)
class Registration:
    """Where and when the chain recorded a record: its registration event and that event's
    block time (``registered_at``, seconds since the epoch, as the contract stores it)."""

    registrant: str
    tx_hash: str
    block_number: int
    registered_at: int
    log_index: int


@dataclass(frozen=True)
class Revocation:
    """Why, by whom, where and when a record was revoked (``revoked_at``: the block time)."""

    reason: str
    revoker: str
    tx_hash: str
    block_number: int
    revoked_at: int
    log_index: int


class _Recorded:
    """What every indexed record answers alike: its id and whether it is revoked. Each record
    class names the field that holds its id in ``id_field``."""

    id_field: ClassVar[str]
    revocation: Revocation | None

    @property
    def record_hash(self) -> str:
        return getattr(self, self.id_field)

    @property
    def revoked(self) -> bool:
        return self.revocation is not None


@dataclass(frozen=True)
class IndexedDataset(_Recorded):
    """A registered dataset: its on-chain fields, its registration and its revocation, if any."""

    kind: ClassVar[RecordKindName] = "dataset"
    id_field: ClassVar[str] = "content_hash"

    content_hash: str
    rows_root: str
    row_count: int
    schema_hash: str
    metadata_hash: str
    parents: tuple[str, ...]
    transform_hash: str
    registration: Registration
    revocation: Revocation | None = None

    @property
    def derived(self) -> bool:
        """Whether it was derived (cleaned) from parent datasets rather than collected raw."""
        return bool(self.parents)

    @property
    def inputs(self) -> tuple[str, ...]:
        """What it was made from: its parent datasets (none for raw data)."""
        return self.parents


@dataclass(frozen=True)
class IndexedModel(_Recorded):
    """A registered model: its training datasets, its training-metadata hash, its registration
    and its revocation, if any."""

    kind: ClassVar[RecordKindName] = "model"
    id_field: ClassVar[str] = "model_hash"

    model_hash: str
    datasets: tuple[str, ...]
    metadata_hash: str
    registration: Registration
    revocation: Revocation | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        """What it was made from: the datasets it was trained on."""
        return self.datasets


@dataclass(frozen=True)
class IndexedBatch(_Recorded):
    """An anchored prediction batch (its id is its Merkle root), its registration and its
    revocation, if any."""

    kind: ClassVar[RecordKindName] = "batch"
    id_field: ClassVar[str] = "root"

    root: str
    model_hash: str
    count: int
    registration: Registration
    revocation: Revocation | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        """What it was made from: the model whose predictions it anchors."""
        return (self.model_hash,)


IndexedRecord = IndexedDataset | IndexedModel | IndexedBatch


@runtime_checkable
class EventIndex(Protocol):
    """A queryable cache of one contract's events; the chain stays the source of truth.

    Hashes may be given as bytes or hex (with or without ``0x``, any case) wherever a method
    takes ``bytes | str``; every hash an index returns is ``0x``-lowercase hex. Listings are
    newest first (by block, then log index).
    """

    def sync(self, client: LedgerClient) -> int:
        """Apply every event after the last indexed block up to the chain's final head, in one
        transaction; returns how many record events (registrations, revocations) it applied."""
        ...

    def rebuild(self, client: LedgerClient) -> int:
        """Drop everything and index ``client``'s contract from its deploy block, atomically."""
        ...

    def index_block(self, client: LedgerClient, block: Any, receipts: Sequence[Any]) -> bool:
        """Index a block just written from the receipts of all its transactions, where it
        directly extends the indexed head (else nothing, and False: the next :meth:`sync` reads
        it); the sync stays the authority, and confirms the block's hash when it next runs."""
        ...

    @property
    def last_block(self) -> int | None:
        """The last block indexed, or None before the first sync."""
        ...

    def holds(self, block_number: int) -> bool:
        """Whether the index has reached ``block_number`` (as :attr:`last_block` would say,
        without reading it where the engine knows already)."""
        ...

    def change_token(self) -> Any | None:
        """A value that is equal between two calls in one thread only if nothing changed in
        the index meanwhile, or None where the engine cannot tell cheaply (PostgreSQL, which
        other replicas write): what a cache of answers read from the index is keyed by."""
        ...

    def kind_of(self, record_hash: bytes | str) -> RecordKindName | None:
        """What a hash is registered as, or None if the index has no record of it."""
        ...

    def dataset(self, content_hash: bytes | str) -> IndexedDataset | None: ...

    def model(self, model_hash: bytes | str) -> IndexedModel | None: ...

    def batch(self, root: bytes | str) -> IndexedBatch | None: ...

    def datasets(self, offset: int = 0, limit: int = 50) -> tuple[list[IndexedDataset], int]:
        """One page of datasets and the total number of datasets."""
        ...

    def models(self, offset: int = 0, limit: int = 50) -> tuple[list[IndexedModel], int]:
        """One page of models and the total number of models."""
        ...

    def batches(self, offset: int = 0, limit: int = 50) -> tuple[list[IndexedBatch], int]:
        """One page of prediction batches and the total number of batches."""
        ...

    def revoked_and_tainted(self) -> tuple[frozenset[str], frozenset[str]]:
        """The revoked records' hashes, and those of the records with a revoked ancestor."""
        ...

    def batches_of_model(self, model_hash: bytes | str) -> list[IndexedBatch]: ...

    def children_of_dataset(self, content_hash: bytes | str) -> list[IndexedDataset]:
        """The datasets derived from this one."""
        ...

    def models_of_dataset(self, content_hash: bytes | str) -> list[IndexedModel]:
        """The models trained on this dataset."""
        ...

    def block_of(
        self, event_name: str, record_hash: str, contract: str | None = None
    ) -> int | None:
        """The block of a record's registration (or, for ``"RecordRevoked"``, revocation)
        event, optionally only if the generation at ``contract`` logged it: the client's
        ``BlockHints``."""
        ...

    def registrar_changes(
        self, account: str, contract: str
    ) -> tuple[list[tuple[int, int, bool]], int | None]:
        """``account``'s REGISTRAR_ROLE changes in the generation at ``contract`` as
        ``(block, log_index, granted)`` and the last block the index covers (None: it cannot
        answer): the client's ``RoleHistory``."""
        ...

    def close(self) -> None:
        """Release connections. Idempotent."""
        ...


def indexed_record(
    index: EventIndex, kind: RecordKindName | None, record_hash: bytes | str
) -> IndexedRecord | None:
    """The record of ``kind`` (any kind when None) registered under ``record_hash`` in
    ``index``, or None: the one lookup by hash that the service parts, the console and lineage
    use, over any engine's :class:`EventIndex`."""
    found = index.kind_of(record_hash)
    if found is None or (kind is not None and kind != found):
        return None
    lookup = {"dataset": index.dataset, "model": index.model, "batch": index.batch}[found]
    return lookup(record_hash)

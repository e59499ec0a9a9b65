"""The console's list pages and search: every dataset, model or batch, filtered by name, file
name, hash prefix and standing, newest or oldest first.

Names live in the records' off-chain metadata documents, not in the index, so each record's
name is read once and kept in memory (a record and its metadata document never change); its
revocation is read per request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal

from api.schemas import BatchPublic, DatasetPublic, ModelPublic
from api.service._core import Core
from api.service.views import batch_view, dataset_view, model_view
from ledger.errors import UnknownRecord
from ledger.index.base import IndexedDataset, IndexedModel, IndexedRecord

__all__ = [
    "LIST_KINDS",
    "STATUSES",
    "ListKind",
    "ListRow",
    "Listing",
    "Listings",
    "Status",
    "file_name_of",
]

ListKind = Literal["dataset", "model", "batch"]
LIST_KINDS: tuple[ListKind, ...] = ("dataset", "model", "batch")
Status = Literal["all", "standing", "revoked", "tainted"]
STATUSES: tuple[Status, ...] = ("all", "standing", "revoked", "tainted")
MIN_PREFIX = 4  # hex digits a hash prefix needs before a search matches on it


@dataclass(frozen=True)
class _Entry:
    """What a listing filters a record on, read once (a record and its metadata document
    never change; only its revocation does, and that is read per request)."""

    hash: str
    title: str  # the name a person knows it by: a dataset's name or file name, an algorithm
    file_name: str | None
    haystack: str  # lower-case text a query is matched in (title, file name, hash)


@dataclass
class _Catalogue:
    """One kind's entries, oldest first; grows as the index does (records are never removed)."""

    entries: list[_Entry] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class ListRow:
    """One row of a list page: the record's view, what to call it, and its standing."""

    kind: ListKind
    view: DatasetPublic | ModelPublic | BatchPublic
    title: str
    file_name: str | None
    revoked: bool
    tainted: bool


@dataclass(frozen=True)
class Listing:
    """A page of a list: its rows, how many records match, how many the ledger holds."""

    rows: list[ListRow]
    matched: int
    total: int


class Listings:
    """Pages of one kind of record, and the search over all kinds."""

    def __init__(self, core: Core) -> None:
        self._core = core
        self._catalogues = {kind: _Catalogue() for kind in LIST_KINDS}

    def listing(
        self,
        kind: ListKind,
        *,
        query: str = "",
        status: Status = "all",
        newest_first: bool = True,
        offset: int = 0,
        limit: int = 50,
    ) -> Listing:
        """A page of ``kind``'s records matching ``query`` (in a name, a file name or a hash
        prefix; case-insensitive) and ``status``, newest or oldest first, with the count of
        the matches. Costs one pass over names held in memory, two index queries for the
        revoked and tainted sets, and one view per row of the page."""
        entries = self._catalogue(kind)
        revoked, tainted = self._core.index.revoked_and_tainted()
        needle = _needle(query)
        matched = [
            e
            for e in (reversed(entries) if newest_first else entries)
            if (not needle or needle in e.haystack)
            and _has_status(e.hash, status, revoked, tainted)
        ]
        rows = [
            self._row(kind, entry, revoked, tainted) for entry in matched[offset : offset + limit]
        ]
        return Listing(rows=rows, matched=len(matched), total=len(entries))

    def search(self, query: str, limit: int = 20) -> dict[ListKind, Listing]:
        """Datasets, models and batches whose name, file name or hash (prefix) holds
        ``query``: the first ``limit`` of each kind, newest first."""
        return {kind: self.listing(kind, query=query, limit=limit) for kind in LIST_KINDS}

    def _catalogue(self, kind: ListKind) -> list[_Entry]:
        """``kind``'s entries, oldest first, after reading any record indexed since the last
        call (the newest ``total - known`` of the index's newest-first list)."""
        catalogue = self._catalogues[kind]
        listing = {
            "dataset": self._core.index.datasets,
            "model": self._core.index.models,
            "batch": self._core.index.batches,
        }[kind]
        with catalogue.lock:
            known = len(catalogue.entries)
            _, total = listing(0, 0)
            while total > known:  # the newest total - known, counted in the same read
                fresh, now = listing(0, total - known)
                if now == total:
                    catalogue.entries.extend(self._entry(r) for r in reversed(fresh))
                    break
                total = now  # a sync landed between the two reads: read again
            return catalogue.entries

    def _entry(self, record: IndexedRecord) -> _Entry:
        file_name = None
        if isinstance(record, IndexedDataset):
            metadata = self._core.json_artifact(record.metadata_hash) or {}
            file_name = file_name_of(metadata)
            title = metadata.get("name") or file_name or ""
        elif isinstance(record, IndexedModel):
            metadata = self._core.json_artifact(record.metadata_hash) or {}
            title = str(metadata.get("algorithm", ""))
        else:
            title = ""
        text = " ".join(t for t in (title, file_name or "", record.record_hash) if t)
        return _Entry(record.record_hash, title, file_name, text.lower())

    def _row(
        self, kind: ListKind, entry: _Entry, revoked: frozenset[str], tainted: frozenset[str]
    ) -> ListRow:
        record = self._core.record(None, entry.hash)  # read now: its revocation may be new
        if record is None:
            raise UnknownRecord(f"no record is registered under {entry.hash}")
        view: DatasetPublic | ModelPublic | BatchPublic
        if isinstance(record, IndexedDataset):
            view = dataset_view(self._core, record)
        elif isinstance(record, IndexedModel):
            view = model_view(self._core, record)
        else:
            view = batch_view(record, self._core)
        return ListRow(
            kind=kind,
            view=view,
            title=entry.title,
            file_name=entry.file_name,
            revoked=entry.hash in revoked,
            tainted=entry.hash in tainted,
        )


def file_name_of(metadata: object) -> str | None:
    """The uploaded file's name in a dataset's metadata document, if it kept one (documents
    written before the service stored ``file_name`` have only ``name``)."""
    if not isinstance(metadata, dict):
        return None
    found = metadata.get("file_name")
    return found if isinstance(found, str) and found else None


def _needle(query: str) -> str:
    """The text a query matches on: lower case, and a hash prefix without its ``0x`` (which
    would match every hash) once it is long enough to mean one."""
    needle = query.strip().lower()
    bare = needle.removeprefix("0x")
    if needle.startswith("0x") and bare and all(c in "0123456789abcdef" for c in bare):
        return needle if len(bare) >= MIN_PREFIX else needle + "\x00"  # too short: no match
    return needle


def _has_status(
    record_hash: str, status: Status, revoked: frozenset[str], tainted: frozenset[str]
) -> bool:
    if status == "revoked":
        return record_hash in revoked
    if status == "tainted":
        return record_hash in tainted
    if status == "standing":
        return record_hash not in revoked and record_hash not in tainted
    return True

"""What every part of the service shares: the opened chain, store, index and receipt book, the
write pipeline, the caches, and the per-record write locks. :func:`open_core` is the one place
that opens them (:mod:`api.service._opening`).

Writes go through one :class:`~ledger.writes.pipeline.WritePipeline`, which answers from the
node's own receipt. :meth:`Core.catch_up` then syncs the index once for every request of that
round (it does nothing when another request's sync already covered the block), so a request is
answered with its record indexed and the indexed reads keep working if the chain goes away
next. Reads call it too, for writes this process made outside a request (anchoring). A request
that repeats a record written a moment ago finds it with :meth:`Core.dataset` /
:meth:`Core.model` (the index, then the pipeline's memory of its recent writes), also while the
chain is away and the index cannot catch up.

Opening is a factory, not a constructor, so that building a ``Core`` by hand (in a test, or
around another index engine) starts no thread and touches no chain.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from eth_account.signers.local import LocalAccount

from api.service._included import indexed_dataset, indexed_model
from api.service.chain_health import ChainHealth
from api.service.lineage_events import LineageEvents
from api.settings import Settings
from ledger.chain.backends.base import ChainBackend
from ledger.chain.client import LedgerClient
from ledger.errors import ChainUnavailable, RecordPending, UnknownRecord
from ledger.formats.receipt_signing import ReceiptSigner
from ledger.formats.receipts import ReceiptDomain
from ledger.index.base import IndexedRecord, RecordKindName, indexed_record
from ledger.index.sqlite import EventIndex, IndexedDataset, IndexedModel, Rewind
from ledger.records import ZERO_HASH, DatasetRegistered, ModelRegistered, hash_hex
from ledger.storage.artifacts import ArtifactStore
from ledger.storage.postgres import StoreUnavailable
from ledger.storage.receipt_book import ReceiptStore
from ledger.writes.anchoring import Anchorer
from ledger.writes.pipeline import WritePipeline
from ledger.writes.shared import SharedWrites
from ml.training_pool import TrainingPool

__all__ = [
    "LRU",
    "Core",
    "RecordLocks",
    "Written",
]

log = logging.getLogger("provenance.service")
_MAX_SYNC_DELAY = 5.0  # seconds between the follower's sync attempts while they fail
_HEAD_TTL = 0.5  # seconds a read of the chain's head serves the records' confirmations

T = TypeVar("T")


@dataclass(frozen=True)
class Written(Generic[T]):
    """The outcome of a write: the record's public view, and whether it is new (201) or was
    registered already, in which case no transaction was sent (200)."""

    view: T
    created: bool


class LRU:
    """A small thread-safe cache (parsed datasets, Merkle trees, loaded models)."""

    def __init__(self, size: int = 8) -> None:
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get_or_make(self, key: Any, make: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value


class RecordLocks:
    """One lock per record hash, kept only while a request holds or waits for it.

    Revocations of the same record take turns: the later one is simulated once the first is
    mined, fails with ``AlreadyRevoked`` and sends nothing, instead of sending a transaction that
    reverts and still costs gas. (Repeated registrations need no lock: the write pipeline joins
    a repeat to the write in flight, or answers it from the one just done.)
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, list[int]]] = {}

    @contextmanager
    def hold(self, record_hash: str) -> Iterator[None]:
        key = record_hash.lower()
        with self._guard:
            lock, users = self._locks.setdefault(key, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users[0] -= 1
                if users[0] == 0:
                    del self._locks[key]


@dataclass
class Core:
    """The opened parts of one data directory. Parts of the service hold one and share it."""

    settings: Settings
    backend: ChainBackend
    account: LocalAccount
    client: LedgerClient
    store: ArtifactStore
    index: EventIndex
    receipts: ReceiptStore
    anchorer: Anchorer
    signer: ReceiptSigner
    writes: WritePipeline | SharedWrites
    training: TrainingPool
    events: LineageEvents
    locks: RecordLocks = field(default_factory=RecordLocks)
    health: ChainHealth = field(default_factory=ChainHealth)
    datasets_cache: LRU = field(default_factory=LRU)
    models_cache: LRU = field(default_factory=LRU)
    _stop: threading.Event = field(default_factory=threading.Event)
    _catching_up: threading.Lock = field(default_factory=threading.Lock)
    _follower: threading.Thread | None = None
    # The follower's last failure that was not the chain being away (a mismatched or broken
    # index, a bug): while it stands, reads re-try the sync themselves rather than answer
    # from an index that has stopped following the chain.
    _sync_failure: BaseException | None = None
    # The block of this process's latest write that the index was last seen to hold: until
    # the next write, a read need not ask the index again (one SQL read per request, 4% of a
    # prediction's CPU).
    _indexed_write: int | None = None

    @property
    def domain(self) -> ReceiptDomain:
        return self.signer.domain

    def sync(self) -> int:
        """Bring the index up to the chain's latest block."""
        return self.index.sync(self.client)

    def on_rewind(self, rewind: Rewind) -> None:
        """The index found final blocks gone from the canonical chain: send this service's
        own transactions of those blocks again (before the index commits its rewind, so a
        crash in between finds them again), and tell the operator."""
        resent = self.writes.resend_orphaned(rewind.tx_hashes)
        self.health.deep_reorg(rewind, resent)

    def catch_up(self) -> None:
        """Sync the index if it has not seen this process's latest write yet; every read of
        the index through the service parts calls this first.

        With the chain away, reads answer from the index as it stands (it is a cache of the
        chain, and what this process wrote since is found by :meth:`dataset` and
        :meth:`model`): an unreachable node must not take the indexed reads down with it. Any
        other failure of the follower's sync (the index no longer matches the chain, say) is
        not served around: each read syncs again and raises what the sync raises."""
        if self._sync_failure is not None:
            with self._catching_up:
                if self._sync_failure is not None:
                    self.sync()  # raises while the index cannot follow the chain
                    self._sync_failure = None
                    return
        written = self.writes.last_block
        if written is None or written == self._indexed_write:
            return  # (a reorganisation that took it back out is the follower's to read)
        if self.index.holds(written):
            self._indexed_write = written
            return
        with self._catching_up:  # the requests of one round wait for one sync, not one each
            if self.index.holds(written):
                return
            try:
                self.sync()
            except ChainUnavailable as exc:
                log.warning("reading a lagging index, the chain is away: %s", exc)

    def record(self, kind: RecordKindName | None, record_hash: str) -> IndexedRecord | None:
        """The record of ``kind`` (any kind when None) under ``record_hash``: from the index,
        or from this process's own write the index has not caught up with yet; None if
        neither has it. The one lookup by hash of the service parts and the console."""
        indexed = indexed_record(self.index, kind, record_hash)
        if indexed is not None:
            return indexed
        recent = self.writes.recent(hash_hex(record_hash))
        if recent is None:
            return None
        if kind in (None, "dataset") and isinstance(recent.event, DatasetRegistered):
            return indexed_dataset(recent)
        if kind in (None, "model") and isinstance(recent.event, ModelRegistered):
            return indexed_model(recent)
        return None

    def not_found(self, exc: UnknownRecord, record_hash: str) -> UnknownRecord:
        """What to raise when ``record_hash`` is not registered: :class:`RecordPending` when
        this service's write of it is in flight (accepted, not on the canonical chain: queued,
        in the pool, or sent again after a reorganisation), else ``exc``."""
        state = self.writes.pending(hash_hex(record_hash))
        if state is None:
            return exc
        return RecordPending(
            f"{record_hash} is pending: its write is {state}",
            waiting_for=self.writes.waiting_for,
        )

    def chain_state(self, block_number: int) -> tuple[str, int | None]:
        """The status (``included`` or ``final``) and confirmations of a record this service
        reads as registered in ``block_number`` (None while the chain is away). The head is
        read at most once per :data:`_HEAD_TTL` seconds (or again for a record newer than the
        head last read), so a list of records costs one read; the write pipeline's reads of
        the head count too, so a write's answer reads none."""
        head = self.client.recent_head(_HEAD_TTL)  # this process's last read, or its writer's
        if head is None or head < block_number:
            try:
                head = self.client.latest_block()
            except ChainUnavailable:
                return "final", None  # the index holds final blocks only; the rest is recent
        status = "final" if block_number <= head - self.backend.confirmations else "included"
        return status, max(0, head - block_number + 1)

    def dataset(self, content_hash: str) -> IndexedDataset | None:
        """The dataset registered under ``content_hash`` (see :meth:`record`)."""
        return cast(IndexedDataset | None, self.record("dataset", content_hash))

    def model(self, model_hash: str) -> IndexedModel | None:
        """The model registered under ``model_hash`` (see :meth:`record`)."""
        return cast(IndexedModel | None, self.record("model", model_hash))

    def json_artifact(self, digest: str) -> Any:
        """A JSON document from the store (re-hashed), or None if the store lacks it."""
        if digest == ZERO_HASH or digest not in self.store:
            return None
        return json.loads(self.store.read_bytes(digest))

    def start(self) -> None:
        """Start the anchorer and the index follower."""
        self.anchorer.start()  # anchors whatever a previous run left pending
        self._follower = threading.Thread(target=self._follow_chain, name="index", daemon=True)
        self._follower.start()

    def _follow_chain(self, every: float = 1.0) -> None:
        """Keep the index caught up with writes this process did not make (anchoring, other
        services on the same node) without any request having to wait for it."""
        delay, failing, last = every, 0, None
        while not self._stop.wait(delay):
            try:
                self.sync()
            except Exception as exc:
                # the chain away: the index is a cache, it answers; the shared database away:
                # every read says so itself (503), and the sync resumes when it is back
                away = isinstance(exc, (ChainUnavailable, StoreUnavailable))
                self._sync_failure = None if away else exc
                if type(exc) is not last:  # once per kind of failure, not once a second
                    if away:
                        what = "chain" if isinstance(exc, ChainUnavailable) else "database"
                        log.warning("index sync: the %s is away, retrying: %s", what, exc)
                    else:
                        log.exception("index sync failed; reads re-try it until it succeeds")
                failing, last = failing + 1, type(exc)
                delay = min(delay * 2, _MAX_SYNC_DELAY)  # back off while it keeps failing
            else:
                if failing:
                    log.warning("index sync recovered after %d failed rounds", failing)
                self._sync_failure = None
                delay, failing, last = every, 0, None

    def close(self) -> None:
        self.training.cancel(self)  # a training in flight must not hold the shutdown up
        self._stop.set()
        if self._follower is not None:
            self._follower.join(timeout=10)
        self.anchorer.stop()
        self.writes.close()
        self.receipts.close()
        self.index.close()
        self.backend.close()
        self.events.close()

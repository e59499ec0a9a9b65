"""What every part of the service shares: the opened chain, store, index and receipt book, the
caches, and the per-record write locks. :func:`open_core` is the one place that opens them.

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
from typing import Any, Generic, TypeVar

from eth_account.signers.local import LocalAccount

from api.errors import Misconfigured
from api.settings import Settings
from ledger.anchoring import Anchorer
from ledger.backends.base import ChainBackend
from ledger.client import LedgerClient
from ledger.deployment import connect_ledger
from ledger.index import EventIndex, LedgerIndex
from ledger.keys import load_keystore, load_or_create_key, read_password
from ledger.receipt_book import ReceiptBook, ReceiptStore
from ledger.receipts import ReceiptDomain, ReceiptSigner
from ledger.records import ZERO_HASH
from ledger.store import ArtifactStore

__all__ = ["LRU", "Core", "RecordLocks", "Written", "open_core"]

log = logging.getLogger("provenance.service")

SERVICE_FUNDING = 1_000 * 10**18  # wei the embedded chain's faucet gives the service key
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

    Concurrent writes of the same record (two uploads of one file, two identical trainings, two
    revocations) take turns: the later one then finds the record on chain and sends nothing,
    instead of sending a transaction that reverts and still costs gas.
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
    locks: RecordLocks = field(default_factory=RecordLocks)
    datasets_cache: LRU = field(default_factory=LRU)
    models_cache: LRU = field(default_factory=LRU)
    trees_cache: LRU = field(default_factory=LRU)
    _stop: threading.Event = field(default_factory=threading.Event)
    _follower: threading.Thread | None = None

    @property
    def domain(self) -> ReceiptDomain:
        return self.signer.domain

    def sync(self) -> int:
        """Bring the index up to the chain's latest block."""
        return self.index.sync(self.client)

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
        while not self._stop.wait(every):
            try:
                self.sync()
            except Exception as exc:  # the chain may be away; the next round retries
                log.warning("index sync failed: %s", exc)

    def close(self) -> None:
        self._stop.set()
        if self._follower is not None:
            self._follower.join(timeout=10)
        self.anchorer.stop()
        self.receipts.close()
        self.index.close()
        self.backend.close()


def open_backend(settings: Settings) -> tuple[ChainBackend, LocalAccount]:
    """The chain backend and the service's signing key, as the settings say."""
    if settings.chain == "embedded":
        from ledger.backends.embedded import EmbeddedBackend

        backend: ChainBackend = EmbeddedBackend(settings.data_dir / "chain")
        account = load_or_create_key(settings.data_dir / "service.key")
        if backend.w3.eth.get_balance(account.address) < SERVICE_FUNDING // 10:
            backend.fund(account.address, SERVICE_FUNDING)
        return backend, account
    from ledger.backends.rpc import RpcBackend

    if settings.keystore is None or settings.rpc_url is None:
        raise Misconfigured("PROVENANCE_KEYSTORE and PROVENANCE_RPC_URL are needed for chain=rpc")
    account = load_keystore(
        settings.keystore,
        read_password("PROVENANCE_KEYSTORE_PASSWORD", "PROVENANCE_KEYSTORE_PASSWORD_FILE"),
    )
    backend = RpcBackend(
        settings.rpc_url, confirmations=settings.confirmations, timeout=settings.rpc_timeout
    )
    return backend, account


def open_core(settings: Settings) -> Core:
    """Open the data directory: chain and key, deployment, store, index, receipt book; sync
    the index and start the background threads."""
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    backend, account = open_backend(settings)
    client = connect_ledger(
        backend,
        account,
        data_dir / "deployment.json",
        deploy_if_missing=settings.chain == "embedded",
    )
    index = LedgerIndex(data_dir / "index.sqlite3")
    client.block_hints = index.block_of  # reads events without full scans
    client.role_history = index.registrar_changes
    receipts = ReceiptBook(data_dir / "receipts.sqlite3")
    core = Core(
        settings=settings,
        backend=backend,
        account=account,
        client=client,
        store=ArtifactStore(data_dir / "artifacts"),
        index=index,
        receipts=receipts,
        anchorer=Anchorer(
            receipts,
            client,
            batch_size=settings.anchor_batch_size,
            interval=settings.anchor_interval,
        ),
        signer=ReceiptSigner(account.key, ReceiptDomain(client.chain_id(), client.address)),
    )
    core.sync()
    core.start()
    return core

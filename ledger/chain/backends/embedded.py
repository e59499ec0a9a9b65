"""The embedded chain: eth-tester and py-evm in process, persistent under the data directory.

The default backend, so the service works with zero configuration. With a data directory the
chain lives in ``<data_dir>/chain.sqlite3`` and survives restarts and ``kill -9``:

* every block (eth-tester mines one per transaction) is written in one SQLite transaction and
  fsynced before ``eth_sendRawTransaction`` returns, so an acknowledged write is durable and a
  crash can never leave half a block;
* a full disk refuses the write (:class:`ChainStoreFull`) and rewinds the chain in memory to its
  last durable block, so nothing of that write remains and the next one succeeds once there is
  room (any other failure to write stops the chain: :class:`ChainStoreError`);
* reopening starts from the stored canonical head (no replay), so start-up time does not grow
  with the history;
* a block carries the wall clock's second, and several blocks may share a second, as on anvil
  and Hardhat (``_clock.py``): a burst of writes never runs the chain ahead of the clock;
* a reverted call or gas estimate is answered as a JSON-RPC node answers it (``execution
  reverted`` with the revert data), so web3 raises the same errors here as against anvil;
* one lock serialises every request, because eth-tester and py-evm are not thread-safe and the
  service writes from several threads;
* the write path's own requests (send a signed transaction, read its receipt, its block and
  the head) reach eth-tester and py-evm directly under that lock, not through web3, whose
  formatting (and eth-tester's) cost milliseconds a write: a block read 1,229 us against
  35 us (``python -m bench.embedded_requests``; :meth:`EmbeddedBackend.send_raw`,
  ``read_receipt``, ``read_block``, ``head_number``);
* reads that anyone may ask for (:meth:`EmbeddedBackend.read_node`) never take that lock: reader
  processes answer them from the last committed block, with every call's gas and time bounded
  (``_readers.py``, ``_snapshot.py``), so a slow read delays no write.

Without a data directory it is a plain in-memory eth-tester chain, for fast tests; its
``read_node`` is its own web3, behind the lock.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast

from eth.db.atomic import AtomicDB
from eth_tester import EthereumTester
from eth_tester.exceptions import TransactionFailed as EVMCallFailed
from eth_utils import to_checksum_address
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider
from web3.types import RPCEndpoint, RPCResponse

from ledger.chain.backends._chaindb import SqliteKeyValueStore
from ledger.chain.backends._readers import ReaderPool, SnapshotProvider
from ledger.chain.backends._tester import (
    DurablePyEVMBackend,
    LogScanningEthereumTester,
    create_chain,
    open_chain,
    revert_data,
    stored_chain_exists,
    tester_account_keys,
)
from ledger.chain.backends._transport import EmbeddedTransport
from ledger.chain.backends.base import ChainBackend
from ledger.chain.backends.reads import ReadLimits
from ledger.errors import ChainUnavailable, LedgerError, TransactionFailed

__all__ = [
    "ChainClosedError",
    "ChainFormatError",
    "ChainInUseError",
    "ChainStoreError",
    "ChainStoreFull",
    "EmbeddedBackend",
]

T = TypeVar("T")

CHAIN_FILE = "chain.sqlite3"
LOCK_FILE = "chain.lock"
FORMAT_VERSION = "1"

# Explicit fees and gas for the faucet transfer: no estimation round-trips.
_TRANSFER_GAS = 21_000
_FAUCET_MAX_FEE = 10**10
_FAUCET_PRIORITY_FEE = 10**9


class ChainClosedError(ChainUnavailable):
    """The embedded chain was closed (the service is shutting down)."""

    hint = "open a new backend on the same data directory"


class ChainStoreError(ChainUnavailable):
    """A block could not be written to the chain file; the chain refuses service until reopened.

    The block exists in memory but not on disk, so serving reads would show a write that a
    crash could still take back.
    """

    hint = "check the disk under the data directory, then restart the service"


class ChainStoreFull(ChainStoreError):
    """The disk under the chain file is full: the block was not written, and the chain was
    rewound to its last durable block, so the write left nothing behind (HTTP 507)."""

    hint = "free space on the disk under the data directory, then retry"


class ChainInUseError(LedgerError):
    """Another process (or backend) holds this chain directory; two writers would fork it."""

    hint = "stop the other service using this data directory, or give each its own"


class ChainFormatError(LedgerError):
    """The chain file was written in a format this code does not read."""


class _LockedProvider(EthereumTesterProvider):
    """An ``EthereumTesterProvider`` that lets one request at a time reach the chain."""

    def __init__(self, tester: EthereumTester, lock: threading.RLock) -> None:
        super().__init__(tester)
        self._lock = lock
        self.closed = False
        self.failure: BaseException | None = None

    def check_open(self) -> None:
        """Refuse work once the chain is closed or a block failed to become durable."""
        if self.closed:
            raise ChainClosedError("the embedded chain is closed")
        if self.failure is not None:
            raise ChainStoreError(f"a block could not be made durable: {self.failure}")

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self._lock:
            self.check_open()
            try:
                return super().make_request(method, params)
            except EVMCallFailed as exc:
                data = revert_data(exc)
                if data is None:
                    raise
                # What geth and anvil answer, so web3 raises the same exception everywhere.
                return cast(
                    RPCResponse,
                    {
                        "jsonrpc": "2.0",
                        "id": self._current_request_id,
                        "error": {"code": 3, "message": "execution reverted", "data": _hex(data)},
                    },
                )


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


class EmbeddedBackend(ChainBackend):
    """eth-tester chain, in memory (``data_dir=None``) or persistent under ``data_dir``."""

    kind: ClassVar[str] = "embedded"

    def __init__(self, data_dir: Path | None = None) -> None:
        self.data_dir = data_dir
        self._lock = threading.RLock()
        self._store: SqliteKeyValueStore | None = None
        self._lock_fd: int | None = None
        self._readers: ReaderPool | None = None
        self._read_w3: Web3 | None = None
        self._readers_lock = threading.Lock()
        if data_dir is None:
            chain = create_chain(AtomicDB())
            backend = DurablePyEVMBackend(chain, tester_account_keys())
        else:
            backend = self._open_persistent(Path(data_dir))
        self._tester = LogScanningEthereumTester(backend=backend, auto_mine_transactions=True)
        self._provider = _LockedProvider(self._tester, self._lock)
        self._w3 = Web3(self._provider)
        self._faucet = to_checksum_address(backend.get_accounts()[0])

    def _open_persistent(self, data_dir: Path) -> DurablePyEVMBackend:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock_directory(data_dir / LOCK_FILE)
        try:
            store = SqliteKeyValueStore(data_dir / CHAIN_FILE)
            self._store = store
            db = AtomicDB(store)
            if stored_chain_exists(db):
                meta = store.read_meta()
                if meta.get("format") != FORMAT_VERSION:
                    raise ChainFormatError(
                        f"{data_dir / CHAIN_FILE}: chain format {meta.get('format')!r}, "
                        f"this code reads {FORMAT_VERSION!r}"
                    )
                chain = open_chain(db)
                if meta.get("chain_id") != str(chain.chain_id):
                    raise ChainFormatError(
                        f"{data_dir / CHAIN_FILE} holds chain id {meta.get('chain_id')}, "
                        f"this eth-tester builds chain id {chain.chain_id}"
                    )
            else:
                # Genesis and its metadata land in one transaction: a crash here leaves an
                # empty file, and the next start simply creates the genesis again.
                chain = create_chain(db)
                store.commit(
                    meta={
                        "format": FORMAT_VERSION,
                        "chain_id": str(chain.chain_id),
                        "genesis_hash": chain.get_canonical_block_by_number(0).hash.hex(),
                    }
                )
                _fsync_directory(data_dir)  # the new file's name is durable too
        except BaseException:
            self.close()
            raise
        return DurablePyEVMBackend(chain, tester_account_keys(), on_block=self._commit_block)

    def _commit_block(self) -> None:
        """Make the block just mined durable, or stop serving (see :class:`ChainStoreError`)."""
        assert self._store is not None
        try:
            self._store.commit()
        except BaseException as exc:
            if _disk_full(exc):
                # SQLite rolled the transaction back: rewind the chain in memory to the file's
                # head, so the write never happened anywhere and the chain keeps serving
                self._store.discard()
                self._tester.backend.chain = open_chain(AtomicDB(self._store))
                raise ChainStoreFull(f"the disk is full; the block was not written: {exc}") from exc
            self._provider.failure = exc
            raise ChainStoreError(f"a block could not be made durable: {exc}") from exc

    @property
    def w3(self) -> Web3:
        """web3 over the chain; safe to use from several threads."""
        return self._w3

    def read_node(self, limits: ReadLimits) -> Web3:
        """web3 over reader processes at the last committed block (see the module docstring);
        the first call's ``limits`` hold for the backend's life."""
        if self.data_dir is None:
            return self._w3
        with self._readers_lock:  # never the chain's lock: a write may be holding it
            if self._readers is None:
                if self._provider.closed:
                    raise ChainClosedError("the embedded chain is closed")
                self._readers = ReaderPool(Path(self.data_dir) / CHAIN_FILE, limits)
                provider = SnapshotProvider(
                    self._readers,
                    accounts=list(self._tester.get_accounts()),
                    chain_id=self._tester.backend.chain.chain_id,
                )
                self._read_w3 = Web3(provider)
            elif self._readers.limits != limits:
                raise ValueError(f"the readers run with {self._readers.limits}, not {limits}")
            assert self._read_w3 is not None
            return self._read_w3

    def _in_process(self, action: Callable[[LogScanningEthereumTester], T]) -> T:
        """``action`` on eth-tester under the chain's lock, refused as the provider refuses a
        request once the chain is closed or failed."""
        with self._lock:
            self._provider.check_open()
            return action(self._tester)

    def head_number(self) -> int:
        return self._in_process(lambda t: int(t.backend.chain.get_canonical_head().block_number))

    def send_raw(self, raw: bytes) -> None:
        """To eth-tester, as the provider hands it (mined and durable when this returns;
        eth-tester's errors raised as they are through web3), without web3's request and
        result formatting (``python -m bench.embedded_requests``)."""
        self._in_process(lambda t: t.send_raw_transaction(_hex(raw)))

    def read_block(self, ref: int | str) -> Mapping[str, Any]:
        """From py-evm (see ``DurablePyEVMBackend.block_fields``); other tags
        (``"pending"``, ``"earliest"``) through web3."""
        if isinstance(ref, str) and ref != "latest" and not ref.startswith("0x"):
            return super().read_block(ref)
        return self._in_process(lambda t: t.backend.block_fields(ref))

    def read_receipt(self, tx_hash: str) -> Mapping[str, Any] | None:
        """From py-evm (see ``DurablePyEVMBackend.receipt_fields``)."""
        digest = bytes.fromhex(tx_hash.removeprefix("0x"))
        return self._in_process(lambda t: t.backend.receipt_fields(digest))

    def transport(self, *, timeout: float = 10.0) -> EmbeddedTransport:
        """eth-tester in process, under this backend's lock (``timeout`` has nothing to bound)."""
        return EmbeddedTransport(self)

    @property
    def readers(self) -> ReaderPool | None:
        """The reader processes behind :meth:`read_node`, once it has been asked for."""
        return self._readers

    @property
    def ethereum_tester(self) -> EthereumTester:
        """The underlying ``EthereumTester``; hold :attr:`lock` while using it directly."""
        return self._tester

    @property
    def lock(self) -> threading.RLock:
        """The lock every chain access goes through (re-entrant)."""
        return self._lock

    def fund(self, address: str, wei: int) -> None:
        """Transfer ``wei`` from eth-tester's first pre-funded account, and wait for it."""
        tx_hash = self._w3.eth.send_transaction(
            {
                "from": self._faucet,
                "to": to_checksum_address(address),
                "value": wei,
                "gas": _TRANSFER_GAS,
                "maxFeePerGas": _FAUCET_MAX_FEE,
                "maxPriorityFeePerGas": _FAUCET_PRIORITY_FEE,
            }
        )
        receipt = self._w3.eth.get_transaction_receipt(tx_hash)
        if receipt["status"] != 1:
            raise TransactionFailed(f"faucet transfer 0x{bytes(tx_hash).hex()} failed")

    def close(self) -> None:
        """Refuse further requests, close the database file and release the directory."""
        with self._lock:
            provider = getattr(self, "_provider", None)
            if provider is not None:
                provider.closed = True
            if getattr(self, "_readers", None) is not None:
                self._readers.close()
            if self._store is not None:
                self._store.close()
                self._store = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = None


def _disk_full(exc: BaseException) -> bool:
    """Whether a failed commit failed for want of space (SQLite rolls such a commit back)."""
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


def _lock_directory(path: Path) -> int:
    """Take an exclusive, crash-safe lock on the chain directory (released by the OS on exit)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ChainInUseError(f"{path.parent} is already open in another backend") from None
    return fd


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

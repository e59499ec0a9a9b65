"""eth-tester's py-evm backend, opened on a database that may already hold a chain.

``PyEVMBackend`` always builds a fresh genesis (``setup_tester_chain``). To reopen a stored
chain we build the very same chain class over the stored database and let py-evm start from
its canonical head: no block is replayed, so opening costs the same at any chain length.

The subclass also:

* calls ``on_block`` after every block is persisted, which is where the embedded backend makes
  the block durable (one SQLite transaction per block);
* finds transactions through py-evm's transaction index instead of eth-tester's scan back
  from the head, which would make every receipt (and every ``eth_getLogs`` over old blocks)
  cost time proportional to the length of the history;
* serves ``eth_getLogs`` by reading each block's receipts once, and skipping blocks whose logs
  bloom rules out the filter, instead of eth-tester's serialise-the-block-then-fetch-every-
  receipt loop (same results, several times faster; the event index is rebuilt this way);
* keeps a reverted ``eth_call``'s raw revert data (eth-tester turns it into a string), so the
  provider can answer like a JSON-RPC node (``execution reverted`` with ``data``) and web3
  raises the same ``ContractLogicError`` on the embedded chain as on anvil or geth;
* stamps a block with the time its first transaction arrives (or the time it is mined, if it
  is mined empty) rather than the time the previous block was mined, so a record's block time
  is when it was written.

The chain runs eth-tester's own chain class over wall-clock VMs (``_clock.py``): a block carries
the wall clock's second, several blocks may share one, and none is earlier than its parent,
across restarts too.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from typing import Any

from eth.abc import AtomicDatabaseAPI, BlockAPI, SignedTransactionAPI
from eth.chains.base import MiningChain
from eth.constants import BLANK_ROOT_HASH
from eth.exceptions import BlockNotFound as EVMBlockNotFound
from eth.exceptions import CanonicalHeadNotFound, HeaderNotFound, Revert
from eth.exceptions import TransactionNotFound as EVMTransactionNotFound
from eth.vm.spoof import SpoofTransaction
from eth_abi import abi
from eth_abi.exceptions import DecodingError
from eth_bloom import BloomFilter
from eth_keys.datatypes import PrivateKey
from eth_tester import EthereumTester
from eth_tester.backends.pyevm.main import (
    PyEVMBackend,
    _execute_and_revert_transaction,
    generate_genesis_state_for_keys,
    get_default_account_keys,
    get_default_genesis_params,
    setup_tester_chain,
)
from eth_tester.backends.pyevm.serializers import (
    serialize_log,
    serialize_transaction,
    serialize_transaction_receipt,
)
from eth_tester.exceptions import TransactionFailed, TransactionNotFound
from eth_tester.utils.filters import check_if_log_matches
from eth_utils import encode_hex, to_checksum_address
from hexbytes import HexBytes
from web3.exceptions import BlockNotFound as Web3BlockNotFound

from ledger.chain.backends._bounded import bounded_chain_class, check_deadline
from ledger.chain.backends._clock import wall_clock_chain_class, wall_clock_second

__all__ = [
    "DurablePyEVMBackend",
    "LogScanningEthereumTester",
    "create_chain",
    "open_chain",
    "open_read_chain",
    "revert_data",
    "stored_chain_exists",
    "tester_account_keys",
]


@functools.cache
def _tester_chain_class() -> type[MiningChain]:
    """eth-tester's own chain class (chain id, fork schedule, constant gas limit), with the
    wall-clock timestamp rule (:func:`~ledger.chain.backends._clock.wall_clock_chain_class`).

    ``setup_tester_chain`` defines it inside the function, so the only faithful way to get it
    is to build one throw-away in-memory chain and take its type.
    """
    _keys, chain = setup_tester_chain()
    return wall_clock_chain_class(type(chain))


def tester_account_keys() -> tuple[PrivateKey, ...]:
    """eth-tester's deterministic pre-funded accounts (private keys 1..10)."""
    return tuple(get_default_account_keys())


def stored_chain_exists(db: AtomicDatabaseAPI) -> bool:
    """Whether ``db`` already holds a chain (a canonical head has been committed)."""
    chain_class = _tester_chain_class()
    try:
        chain_class.get_chaindb_class()(db).get_canonical_head()
    except CanonicalHeadNotFound:
        return False
    return True


def create_chain(db: AtomicDatabaseAPI) -> MiningChain:
    """Write eth-tester's default genesis (10 funded accounts) into ``db``."""
    genesis_state = generate_genesis_state_for_keys(tester_account_keys())
    return _tester_chain_class().from_genesis(db, get_default_genesis_params(), genesis_state)


def open_chain(db: AtomicDatabaseAPI) -> MiningChain:
    """Open the chain stored in ``db`` at its canonical head, without replaying anything."""
    return _tester_chain_class()(db)


def open_read_chain(db: AtomicDatabaseAPI) -> MiningChain:
    """The same chain for reads only, over VMs that honour a time budget (``_bounded.py``)."""
    return bounded_chain_class(_tester_chain_class())(db)


class DurablePyEVMBackend(PyEVMBackend):
    """``PyEVMBackend`` over a given chain, reporting each persisted block to ``on_block``."""

    def __init__(
        self,
        chain: MiningChain,
        account_keys: Sequence[PrivateKey],
        on_block: Callable[[], None] | None = None,
    ) -> None:
        # PyEVMBackend.__init__ would build a fresh genesis chain: set its fields ourselves.
        self.chain = chain
        self.account_keys = tuple(account_keys)
        self._on_block = on_block

    def _block_persisted(self) -> None:
        if self._on_block is not None:
            self._on_block()

    # -- writes: make each persisted block durable --------------------------------------------

    def reset_to_genesis(self, *args: Any, **kwargs: Any) -> None:
        if self._on_block is not None:
            raise NotImplementedError("a persistent chain is never reset to genesis")
        super().reset_to_genesis(*args, **kwargs)

    def mine_blocks(self, num_blocks: int = 1, coinbase: bytes = 20 * b"\x00") -> tuple:
        hashes: list[bytes] = []
        for _ in range(num_blocks):  # each empty block is dated when it is mined
            self._stamp_pending_block()
            hashes.extend(super().mine_blocks(1, coinbase))
        self._block_persisted()
        return tuple(hashes)

    def revert_to_snapshot(self, snapshot: bytes) -> None:
        if self._on_block is not None:
            # Rewinding the canonical head would rewrite acknowledged history.
            raise NotImplementedError("a persistent chain is never reverted to a snapshot")
        super().revert_to_snapshot(snapshot)

    def apply_withdrawals(self, withdrawals_list: list[dict[str, int | str]]) -> None:
        super().apply_withdrawals(withdrawals_list)
        self._block_persisted()

    def _stamp_pending_block(self) -> None:
        """Date an empty pending block now, not when the previous block was mined.

        The pending header was dated ``max(parent, wall clock)`` when the previous block was
        mined, so ``max(that, wall clock now)`` is still never earlier than the parent.
        """
        header = self.chain.header
        if header.transaction_root != BLANK_ROOT_HASH:
            return  # transactions ran against this date: the block keeps it
        timestamp = wall_clock_second(header.timestamp)
        if timestamp != header.timestamp:
            self.chain.header = header.copy(timestamp=timestamp)

    def send_raw_transaction(self, raw_transaction: bytes) -> bytes:
        self._stamp_pending_block()
        return super().send_raw_transaction(raw_transaction)

    def send_signed_transaction(self, signed_transaction: Any, block_number: Any = "latest") -> Any:
        self._stamp_pending_block()
        return super().send_signed_transaction(signed_transaction, block_number)

    def send_transaction(self, transaction: Any) -> Any:
        self._stamp_pending_block()
        return super().send_transaction(transaction)

    # -- reads ------------------------------------------------------------------------------

    def call(self, transaction: dict[str, Any], block_number: Any = "latest") -> bytes:
        """eth-tester's ``call``, except that a revert is raised *from* the EVM's ``Revert``,
        whose ``args[0]`` is the raw revert data (see :func:`revert_data`)."""
        defaulted = dict(transaction)
        if "gas" not in defaulted:
            defaulted["gas"] = self._max_available_gas()
        unsigned = self._get_normalized_and_unsigned_evm_transaction(defaulted, block_number)
        spoofed = SpoofTransaction(unsigned, from_=transaction["from"])
        computation = _execute_and_revert_transaction(self.chain, spoofed, block_number)
        if not computation.is_error:
            return computation.output
        error = computation.error
        message = str(error)
        if self.is_eip838_error(error):
            with contextlib.suppress(DecodingError):
                message = abi.decode(["string"], error.args[0][4:])[0]
        raise TransactionFailed(message) from error

    def block_fields(self, ref: int | str) -> dict[str, Any]:
        """The fields of a block the write path reads (number, hash, parent hash, time, gas
        limit, base fee, transaction hashes), under web3's names, straight from py-evm: web3's
        ``get_block`` of the same block cost 1,229 us here against 35 us (``python -m
        bench.embedded_requests``), formatting a whole block twice (eth-tester's normalisers,
        then web3's) for every write's answer.
        ``ref`` is ``"latest"``, a number or a 0x block hash; raises web3's
        ``BlockNotFound`` as web3 would."""
        chain = self.chain
        try:
            if ref == "latest":
                block = chain.get_canonical_block_by_number(chain.get_canonical_head().block_number)
            elif isinstance(ref, int):
                block = chain.get_canonical_block_by_number(ref)
            else:
                block = chain.get_block_by_hash(bytes.fromhex(ref.removeprefix("0x")))
        except (EVMBlockNotFound, HeaderNotFound):
            raise Web3BlockNotFound(f"block {ref!r} not found") from None
        header = block.header
        return {
            "number": header.block_number,
            "hash": HexBytes(header.hash),
            "parentHash": HexBytes(header.parent_hash),
            "timestamp": header.timestamp,
            "gasLimit": header.gas_limit,
            "baseFeePerGas": header.base_fee_per_gas,
            "transactions": [HexBytes(tx.hash) for tx in block.transactions],
        }

    def receipt_fields(self, transaction_hash: bytes) -> dict[str, Any] | None:
        """A mined transaction's receipt as web3's ``get_transaction_receipt`` answers it
        (camelCase names, hashes as ``HexBytes``, addresses checksummed; eth-tester's extra
        ``state_root`` left out), or None while it is not mined, without formatting it to hex
        and back (eth-tester's normalisers, then web3's formatters): 1,485 us against 540 us
        here."""
        try:
            fields = self.get_transaction_receipt(transaction_hash)
        except TransactionNotFound:
            return None
        if fields["block_hash"] is None:
            return None  # pending: web3 answers "not found" too
        receipt = _web3_names(fields)
        receipt["logs"] = [_web3_names(log) for log in fields["logs"]]
        return receipt

    # -- reads: look transactions up by index -------------------------------------------------

    def _find_transaction(
        self, transaction_hash: bytes
    ) -> tuple[BlockAPI, SignedTransactionAPI, int]:
        chain = self.chain
        pending = chain.get_block()
        for index, transaction in enumerate(pending.transactions):
            if transaction.hash == transaction_hash:
                return pending, transaction, index
        try:
            block_number, index = chain.chaindb.get_transaction_index(transaction_hash)
        except EVMTransactionNotFound:
            raise TransactionNotFound(
                f"No transaction found for transaction hash: {encode_hex(transaction_hash)}"
            ) from None
        block = chain.get_canonical_block_by_number(block_number)
        return block, block.transactions[index], index

    def get_transaction_by_hash(self, transaction_hash: bytes) -> dict[str, Any]:
        block, transaction, index = self._find_transaction(transaction_hash)
        is_pending = block.number == self.chain.get_block().number
        return serialize_transaction(block, transaction, index, is_pending)

    def get_transaction_receipt(self, transaction_hash: bytes) -> dict[str, Any]:
        block, transaction, index = self._find_transaction(transaction_hash)
        is_pending = block.number == self.chain.get_block().number
        receipts = block.get_receipts(self.chain.chaindb)
        return serialize_transaction_receipt(
            block, receipts, transaction, index, is_pending, self.chain.get_vm()
        )


def revert_data(exc: BaseException) -> bytes | None:
    """The raw data of the EVM revert behind ``exc`` (a call or a gas estimate), if any."""
    seen: BaseException | None = exc
    for _ in range(8):  # eth-tester and web3 wrap it a few times over
        if seen is None:
            return None
        if isinstance(seen, Revert):
            data = seen.args[0] if seen.args else b""
            return bytes(data) if isinstance(data, bytes | bytearray) else b""
        seen = seen.__cause__ or seen.__context__
    return None


def _bloom_may_match(bloom: BloomFilter, addresses: Any, topics: Any) -> bool:
    """False only if no log in the block can match (a bloom has false positives, never
    false negatives). ``addresses`` and ``topics`` are eth-tester's raw filter parameters."""
    if addresses is not None:
        candidates = addresses if isinstance(addresses, tuple) else (addresses,)
        if not any(address in bloom for address in candidates):
            return False
    for position in topics or ():
        choices = position if isinstance(position, tuple) else (position,)
        if None in choices or not choices:
            continue  # a wildcard position
        if not any(topic in bloom for topic in choices):
            return False
    return True


class LogScanningEthereumTester(EthereumTester):
    """``EthereumTester`` whose ``get_logs`` reads the chain block by block, cheaply."""

    backend: DurablePyEVMBackend

    def get_logs(
        self,
        from_block: Any = None,
        to_block: Any = None,
        address: Any = None,
        topics: Any = None,
    ) -> tuple[dict[str, Any], ...]:
        # 1. validate and normalise exactly as eth-tester does
        self.validator.validate_inbound_filter_params(
            from_block=from_block, to_block=to_block, address=address, topics=topics
        )
        raw_from, raw_to, raw_address, raw_topics = self.normalizer.normalize_inbound_filter_params(
            from_block=from_block, to_block=to_block, address=address, topics=topics
        )
        lower = self._block_bound(raw_from)
        upper = self._block_bound(raw_to)
        chain = self.backend.chain
        # 2. the pending block (or a bound past the head) is eth-tester's business
        if upper >= chain.header.block_number:
            return super().get_logs(from_block, to_block, address, topics)
        matches = functools.partial(
            check_if_log_matches,
            from_block=raw_from,
            to_block=raw_to,
            addresses=raw_address,
            topics=raw_topics,
        )
        # 3. walk the canonical blocks, opening only those whose bloom allows a match
        found: list[dict[str, Any]] = []
        chaindb = chain.chaindb
        for number in range(lower, upper + 1):
            check_deadline()  # a reader's scan stops at its time budget (none on the writer)
            header = chaindb.get_canonical_block_header_by_number(number)
            if not _bloom_may_match(BloomFilter(header.bloom), raw_address, raw_topics):
                continue
            block = chain.get_block_by_header(header)
            receipts = block.get_receipts(chaindb)
            for tx_index, (transaction, receipt) in enumerate(
                zip(block.transactions, receipts, strict=True)
            ):
                for log_index, log in enumerate(receipt.logs):
                    entry = serialize_log(block, transaction, tx_index, log, log_index, False)
                    if matches(entry):
                        found.append(self.normalizer.normalize_outbound_log_entry(entry))
        return tuple(found)

    def _block_bound(self, raw_block: Any) -> int:
        if isinstance(raw_block, int):
            return raw_block
        return self.get_block_by_number("latest" if raw_block is None else raw_block)["number"]


_ADDRESS_FIELDS = frozenset({"from", "to", "contract_address", "address"})


def _web3_names(fields: dict[str, Any]) -> dict[str, Any]:
    """eth-tester's serialised fields as web3 formats them: camelCase names, byte strings as
    ``HexBytes``, addresses checksummed (a 32-byte topic list stays a list of ``HexBytes``)."""
    named: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "logs" or key == "state_root":
            continue
        head, *rest = key.split("_")
        name = head + "".join(part.title() for part in rest)
        if key in _ADDRESS_FIELDS and value is not None:
            value = to_checksum_address(value) if value else ""  # b"": a creation's "to"
        elif isinstance(value, bytes):
            value = HexBytes(value)
        elif key == "topics":
            value = [HexBytes(topic) for topic in value]
        named[name] = value
    return named

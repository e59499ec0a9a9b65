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
* stamps a block with the time its first transaction arrives rather than the time the previous
  block was mined, so a record's block time is when it was written (still strictly increasing,
  across restarts too).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from eth._utils.headers import new_timestamp_from_parent
from eth.abc import AtomicDatabaseAPI, BlockAPI, SignedTransactionAPI
from eth.chains.base import MiningChain
from eth.exceptions import CanonicalHeadNotFound
from eth.exceptions import TransactionNotFound as EVMTransactionNotFound
from eth_keys.datatypes import PrivateKey
from eth_tester.backends.pyevm.main import (
    PyEVMBackend,
    generate_genesis_state_for_keys,
    get_default_account_keys,
    get_default_genesis_params,
    setup_tester_chain,
)
from eth_tester.backends.pyevm.serializers import (
    serialize_transaction,
    serialize_transaction_receipt,
)
from eth_tester.exceptions import TransactionNotFound
from eth_utils import encode_hex

__all__ = ["DurablePyEVMBackend", "create_chain", "open_chain", "stored_chain_exists"]


@functools.cache
def _tester_chain_class() -> type[MiningChain]:
    """eth-tester's own chain class (chain id, fork schedule, constant gas limit).

    ``setup_tester_chain`` defines it inside the function, so the only faithful way to get it
    is to build one throw-away in-memory chain and take its type.
    """
    _keys, chain = setup_tester_chain()
    return type(chain)


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
        hashes = super().mine_blocks(num_blocks, coinbase)
        self._block_persisted()
        return hashes

    def revert_to_snapshot(self, snapshot: bytes) -> None:
        super().revert_to_snapshot(snapshot)
        self._block_persisted()

    def apply_withdrawals(self, withdrawals_list: list[dict[str, int | str]]) -> None:
        super().apply_withdrawals(withdrawals_list)
        self._block_persisted()

    def _stamp_pending_block(self) -> None:
        """Date an empty pending block now, not when the previous block was mined."""
        chain = self.chain
        if chain.get_block().transactions:
            return
        parent = chain.get_canonical_head()
        chain.header = chain.header.copy(timestamp=new_timestamp_from_parent(parent))

    def send_raw_transaction(self, raw_transaction: bytes) -> bytes:
        self._stamp_pending_block()
        return super().send_raw_transaction(raw_transaction)

    def send_signed_transaction(self, signed_transaction: Any, block_number: Any = "latest") -> Any:
        self._stamp_pending_block()
        return super().send_signed_transaction(signed_transaction, block_number)

    def send_transaction(self, transaction: Any) -> Any:
        self._stamp_pending_block()
        return super().send_transaction(transaction)

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

"""Signing, nonces, fees and receipts for one sending account: the one owner of its nonces.

Kept apart from the contract client so that deployment, the client's single calls and the
write pipeline (:mod:`ledger.writes.pipeline`) share one nonce counter and one lock: concurrent
writers from the service's threads never collide, and several transactions can be in flight at
consecutive nonces.

The counter starts from the node's *pending* transaction count, so transactions a previous run
left in the node's pool are never overwritten, and it is re-read from the node after any failed
send, so a refused transaction never leaves a gap. A transaction that waits too long is
*replaced*: the same nonce and call signed again with both fees raised by at least
:data:`FEE_BUMP` (geth refuses a replacement that raises them by less than 10%).

``max_fee_per_gas`` (None: no ceiling) is a fee cap no transaction is ever signed above: a send
while the base fee is over it raises :class:`~ledger.errors.FeeAboveCeiling` before anything is
signed, and a replacement that would have to pass it is not made (:meth:`Transactor.replace`
raises the same), so a fee spike costs waiting, never money past the operator's bound.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from eth_account.signers.local import LocalAccount
from eth_keys.datatypes import PrivateKey
from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    TransactionNotFound,
)

from ledger.chain._signing import sign_dynamic_fee
from ledger.chain.backends.base import ChainBackend
from ledger.errors import (
    ChainUnavailable,
    FeeAboveCeiling,
    GasLimitExceeded,
    LedgerError,
    TransactionFailed,
    decode_revert,
)
from ledger.records import hash_hex

__all__ = ["FEE_BUMP", "MIN_REPLACEMENT_BUMP", "PRIORITY_FEE", "SignedTx", "Transactor", "guard"]

PRIORITY_FEE = 10**9  # 1 gwei; local chains ignore it, public ones want some tip
FEE_BUMP = 1.125  # a replacement raises both fees by 12.5%: geth wants 10%, we keep a margin
MIN_REPLACEMENT_BUMP = 1.1  # what geth asks of a replacement's fees
FEE_BLOCK_MAX_AGE = 2.0  # seconds a block read for its base fee stays good enough

T = TypeVar("T")


def guard(action: Callable[[], T]) -> T:
    """Run a chain call, turning reverts and connection failures into LedgerErrors."""
    try:
        return action()
    except LedgerError:
        raise
    except ContractLogicError as exc:
        data = exc.data
        if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
            raise decode_revert(bytes.fromhex(data[2:])) from exc
        raise TransactionFailed(f"the contract reverted: {exc}") from exc
    except (ProviderConnectionError, OSError) as exc:
        raise ChainUnavailable(f"the chain node is unreachable: {exc}") from exc


@dataclass(frozen=True)
class SignedTx:
    """A signed transaction: what was asked (``tx``: to and data), at which nonce and fees, and
    its raw bytes, which can be broadcast again as they are."""

    tx: dict[str, Any]
    gas: int
    nonce: int
    max_fee: int
    priority_fee: int
    tx_hash: str
    raw: bytes


class Transactor:
    """Sends transactions signed by ``account``; owns its nonces."""

    def __init__(
        self,
        backend: ChainBackend,
        account: LocalAccount,
        *,
        receipt_timeout: float = 120.0,
        max_fee_per_gas: int | None = None,
    ) -> None:
        self.backend = backend
        self.account = account
        self._key = PrivateKey(account.key)
        self.receipt_timeout = receipt_timeout
        self.max_fee_per_gas = max_fee_per_gas
        self._w3 = backend.w3
        self._chain_id: int | None = None
        self._nonce: int | None = None
        self._floor = 0  # no nonce below this is handed out (see reserve_through)
        self._lock = threading.Lock()
        self._fee_block: tuple[float, Any] | None = None  # (when it was read, the block)

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = guard(lambda: self._w3.eth.chain_id)
        return self._chain_id

    # -- reading the chain --------------------------------------------------------------------

    def simulate(self, tx: dict[str, Any]) -> None:
        """Run ``tx`` as an ``eth_call``; a revert raises its typed LedgerError, nothing is sent."""
        guard(lambda: self._w3.eth.call({**tx, "from": self.account.address}))

    def note_block(self, block: Any) -> None:
        """Remember a block just read (the write pipeline reads each receipt's block for its
        time): its base fee and gas limit serve the next sends without another round trip."""
        self._fee_block = (time.monotonic(), block)

    def fee_block(self) -> Any:
        """A recent block for fees and the gas limit: the last one noted, if fresh enough,
        else the latest."""
        noted = self._fee_block
        if noted is not None and time.monotonic() - noted[0] < FEE_BLOCK_MAX_AGE:
            return noted[1]
        block = guard(lambda: self.backend.read_block("latest"))
        self.note_block(block)
        return block

    def pending_nonce(self) -> int:
        """The next nonce the node would take from this account: the chain's count plus the
        transactions its pool holds at consecutive nonces (it stops at the first gap)."""
        return guard(lambda: self._w3.eth.get_transaction_count(self.account.address, "pending"))

    def known(self, tx_hash: str) -> bool:
        """Whether the node holds ``tx_hash`` (in its pool or in a block)."""
        try:
            return guard(lambda: self._w3.eth.get_transaction(tx_hash)) is not None  # type: ignore[arg-type]
        except TransactionNotFound:
            return False

    def filler(self, nonce: int, *, block: Any | None = None) -> SignedTx:
        """A transfer of nothing to this account itself at ``nonce``, not yet sent: it fills a
        nonce that no journaled transaction can (so the ones after it can be mined)."""
        max_fee, priority = self._fees(block if block is not None else self.fee_block())
        tx = {"to": self.account.address, "data": "0x"}
        return self._sign(tx, 21_000, nonce, max_fee, priority)

    def confirmed_nonce(self) -> int:
        """How many of this account's transactions the chain holds (the next nonce it expects
        once the pool is empty)."""
        return guard(lambda: self._w3.eth.get_transaction_count(self.account.address, "latest"))

    # -- sending ------------------------------------------------------------------------------

    def send(self, tx: dict[str, Any], *, gas: int) -> Any:
        """Sign and send ``tx`` with an explicit gas limit; return its successful receipt.

        A limit over the latest block's raises :class:`GasLimitExceeded` before anything is
        signed: the node would refuse it anyway, less clearly, and a batch can be split."""
        latest = guard(lambda: self.backend.read_block("latest"))
        self.note_block(latest)
        signed = self.broadcast(tx, gas=gas, block=latest)
        receipt = self.wait(signed.tx_hash)
        if receipt["status"] != 1:
            raise self.explain_failure(tx, receipt)
        return receipt

    def broadcast(
        self,
        tx: dict[str, Any],
        *,
        gas: int,
        block: Any | None = None,
        before_send: Callable[[SignedTx], None] | None = None,
    ) -> SignedTx:
        """Sign ``tx`` at the next nonce and hand it to the node, without waiting for it.

        ``block`` (default :meth:`fee_block`) gives the base fee and the gas limit; a limit over
        the block's raises :class:`GasLimitExceeded` before anything is signed. ``before_send``
        runs with the signed transaction before the node sees it (the pipeline journals it
        there). Nonces are handed out, signed and sent under one lock, so a send the node
        refuses is re-numbered from the node before any later one: no gap, no reuse.
        """
        with self._lock:
            block = block if block is not None else self.fee_block()
            if gas > block["gasLimit"]:
                raise GasLimitExceeded(
                    f"the write may need {gas} gas, a block holds {block['gasLimit']}",
                    gas=gas,
                    block_gas_limit=block["gasLimit"],
                )
            if self._nonce is None:
                pending = guard(
                    lambda: self._w3.eth.get_transaction_count(self.account.address, "pending")
                )
                self._nonce = max(pending, self._floor)
            max_fee, priority = self._fees(block)
            signed = self._sign(tx, gas, self._nonce, max_fee, priority)
            try:
                if before_send is not None:
                    before_send(signed)
                guard(lambda: self.backend.send_raw(signed.raw))
            except BaseException:
                self._nonce = None  # resynchronise from the node next time
                raise
            self._nonce += 1
        return signed

    def replace(self, signed: SignedTx, *, block: Any | None = None) -> SignedTx:
        """``signed`` again at the same nonce, both fees raised by at least :data:`FEE_BUMP`
        (and the fee cap to twice the base fee of ``block``, default the latest, if that is
        more: a base fee that rose is the usual reason a transaction waits); not yet sent."""
        if block is None:
            block = guard(lambda: self.backend.read_block("latest"))
            self.note_block(block)
        priority = math.ceil(signed.priority_fee * FEE_BUMP)
        base_fee = block.get("baseFeePerGas", 0)
        max_fee = max(math.ceil(signed.max_fee * FEE_BUMP), 2 * base_fee + priority)
        ceiling = self.max_fee_per_gas
        if ceiling is not None and max_fee > ceiling:
            max_fee, priority = ceiling, min(priority, ceiling)
            if max_fee < signed.max_fee * MIN_REPLACEMENT_BUMP or base_fee > ceiling:
                raise FeeAboveCeiling(
                    f"the transaction at nonce {signed.nonce} waits: its fee cap "
                    f"({signed.max_fee} wei) cannot be raised further under "
                    f"PROVENANCE_MAX_FEE_PER_GAS ({ceiling} wei); the base fee is {base_fee} wei",
                    base_fee=base_fee,
                    ceiling=ceiling,
                )
        return self._sign(signed.tx, signed.gas, signed.nonce, max_fee, priority)

    def _fees(self, block: Any) -> tuple[int, int]:
        """The fee cap and tip of a new transaction: twice the base fee plus the tip (room for
        the base fee to rise for a few blocks), never above the ceiling; raises
        :class:`FeeAboveCeiling` if even the base fee is over it."""
        base_fee = block.get("baseFeePerGas", 0)
        max_fee, priority = 2 * base_fee + PRIORITY_FEE, PRIORITY_FEE
        ceiling = self.max_fee_per_gas
        if ceiling is None or max_fee <= ceiling:
            return max_fee, priority
        if base_fee >= ceiling:
            raise FeeAboveCeiling(
                f"the base fee ({base_fee} wei) is above PROVENANCE_MAX_FEE_PER_GAS "
                f"({ceiling} wei): writes wait until it falls",
                base_fee=base_fee,
                ceiling=ceiling,
            )
        return ceiling, min(priority, ceiling - base_fee)

    def rebroadcast(self, signed: SignedTx) -> bool:
        """Hand ``signed`` to the node (again); False when the node refuses it (it holds it
        already, or its nonce is used: the caller asks the chain which)."""
        try:
            guard(lambda: self.backend.send_raw(signed.raw))
        except ChainUnavailable:
            raise
        except Exception:  # "already known", "nonce too low", "underpriced": the chain decides
            return False
        return True

    def forget_nonces(self) -> None:
        """Read the next nonce from the node again at the next send: another process may have
        sent with this key since (a replica taking the sender role over; see
        :mod:`ledger.writes.shared`)."""
        with self._lock:
            self._nonce, self._floor = None, 0

    def reserve_through(self, nonce: int) -> None:
        """Never hand out ``nonce`` or any below it (they are taken by journaled transactions
        the node may have lost)."""
        with self._lock:
            self._floor = max(self._floor, nonce + 1)
            if self._nonce is not None:
                self._nonce = max(self._nonce, self._floor)

    def _sign(
        self, tx: dict[str, Any], gas: int, nonce: int, max_fee: int, priority: int
    ) -> SignedTx:
        signed = sign_dynamic_fee(
            self._key,
            chain_id=self.chain_id,
            nonce=nonce,
            max_priority_fee=priority,
            max_fee=max_fee,
            gas=gas,
            to=tx.get("to"),
            data=tx.get("data", b""),
        )
        return SignedTx(
            tx=dict(tx),
            gas=gas,
            nonce=nonce,
            max_fee=max_fee,
            priority_fee=priority,
            tx_hash=hash_hex(signed.tx_hash),
            raw=signed.raw,
        )

    # -- receipts -----------------------------------------------------------------------------

    def receipt(self, tx_hash: str) -> Any | None:
        """The receipt of a mined transaction, or None while it is not mined."""
        return guard(lambda: self.backend.read_receipt(tx_hash))

    def wait(self, tx_hash: str) -> Any:
        """The receipt of ``tx_hash`` once it has the backend's confirmations on top (polled
        every 50 ms, as web3's ``wait_for_transaction_receipt`` would, through
        :meth:`receipt`: on the embedded chain, mined already and read without web3)."""
        deadline = time.monotonic() + self.receipt_timeout
        while (receipt := self.receipt(tx_hash)) is None:
            if time.monotonic() > deadline:
                raise TransactionFailed(
                    f"no receipt for {tx_hash} within {self.receipt_timeout:.0f} s"
                )
            time.sleep(0.05)
        confirmations = self.backend.confirmations
        deadline = time.monotonic() + self.receipt_timeout
        while confirmations and guard(self.backend.head_number) < (
            receipt["blockNumber"] + confirmations
        ):
            if time.monotonic() > deadline:
                raise TransactionFailed(f"{tx_hash} did not reach {confirmations} confirmations")
            time.sleep(0.2)
        return receipt

    def explain_failure(self, tx: dict[str, Any], receipt: Any) -> LedgerError:
        """Replay a reverted transaction on its parent block to learn which error it hit."""
        tx_hash = hash_hex(bytes(receipt["transactionHash"]))
        try:
            self._w3.eth.call({**tx, "from": self.account.address}, receipt["blockNumber"] - 1)
        except ContractLogicError as exc:
            if isinstance(exc.data, str) and exc.data.startswith("0x") and len(exc.data) >= 10:
                return decode_revert(bytes.fromhex(exc.data[2:]))
        except Exception:  # the replay only improves the message
            pass
        return TransactionFailed(f"transaction {tx_hash} reverted", tx_hash=tx_hash)

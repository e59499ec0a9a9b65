"""Signing, nonces, fees and receipts for one sending account.

Kept apart from the contract client so that deployment and contract calls share one nonce
counter and one lock: concurrent writers from the service's threads never collide.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from eth_account.signers.local import LocalAccount
from web3.exceptions import ContractLogicError, ProviderConnectionError, TimeExhausted

from ledger.backends.base import ChainBackend
from ledger.errors import (
    ChainUnavailable,
    GasLimitExceeded,
    LedgerError,
    TransactionFailed,
    decode_revert,
)
from ledger.records import hash_hex

PRIORITY_FEE = 10**9  # 1 gwei; local chains ignore it, public ones want some tip

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


class Transactor:
    """Sends transactions signed by ``account`` and waits for them to be final."""

    def __init__(
        self, backend: ChainBackend, account: LocalAccount, *, receipt_timeout: float = 120.0
    ) -> None:
        self.backend = backend
        self.account = account
        self.receipt_timeout = receipt_timeout
        self._w3 = backend.w3
        self._chain_id: int | None = None
        self._nonce: int | None = None
        self._lock = threading.Lock()

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = guard(lambda: self._w3.eth.chain_id)
        return self._chain_id

    def simulate(self, tx: dict[str, Any]) -> None:
        """Run ``tx`` as an ``eth_call``; a revert raises its typed LedgerError, nothing is sent."""
        guard(lambda: self._w3.eth.call({**tx, "from": self.account.address}))

    def send(self, tx: dict[str, Any], *, gas: int) -> Any:
        """Sign and send ``tx`` with an explicit gas limit; return its successful receipt.

        A limit over the latest block's raises :class:`GasLimitExceeded` before anything is
        signed: the node would refuse it anyway, less clearly, and a batch can be split."""
        w3 = self._w3
        with self._lock:
            latest = guard(lambda: w3.eth.get_block("latest"))
            if gas > latest["gasLimit"]:
                raise GasLimitExceeded(
                    f"the write may need {gas} gas, a block holds {latest['gasLimit']}",
                    gas=gas,
                    block_gas_limit=latest["gasLimit"],
                )
            if self._nonce is None:
                self._nonce = guard(
                    lambda: w3.eth.get_transaction_count(self.account.address, "pending")
                )
            base_fee = latest.get("baseFeePerGas", 0)
            signed = self.account.sign_transaction(
                {
                    **tx,
                    "value": 0,
                    "gas": gas,
                    "nonce": self._nonce,
                    "chainId": self.chain_id,
                    "maxFeePerGas": 2 * base_fee + PRIORITY_FEE,
                    "maxPriorityFeePerGas": PRIORITY_FEE,
                    "type": 2,
                }
            )
            try:
                tx_hash = guard(lambda: w3.eth.send_raw_transaction(signed.raw_transaction))
            except Exception:
                self._nonce = None  # resynchronise from the node next time
                raise
            self._nonce += 1
        receipt = self._wait(tx_hash)
        if receipt["status"] != 1:
            raise self._explain_failure(tx, receipt)
        return receipt

    def _wait(self, tx_hash: bytes) -> Any:
        try:
            receipt = guard(
                lambda: self._w3.eth.wait_for_transaction_receipt(
                    tx_hash, timeout=self.receipt_timeout, poll_latency=0.05
                )
            )
        except TimeExhausted as exc:
            raise TransactionFailed(
                f"no receipt for 0x{bytes(tx_hash).hex()} within {self.receipt_timeout:.0f} s"
            ) from exc
        confirmations = self.backend.confirmations
        deadline = time.monotonic() + self.receipt_timeout
        while confirmations and guard(lambda: self._w3.eth.block_number) < (
            receipt["blockNumber"] + confirmations
        ):
            if time.monotonic() > deadline:
                raise TransactionFailed(
                    f"0x{bytes(tx_hash).hex()} did not reach {confirmations} confirmations"
                )
            time.sleep(0.2)
        return receipt

    def _explain_failure(self, tx: dict[str, Any], receipt: Any) -> LedgerError:
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

"""A read-only node over the embedded chain's file: what one reader process runs.

The embedded chain serialises every request behind one lock (py-evm is not thread-safe), so a
slow public read used to hold every write: four endless-loop ``eth_call`` s delayed a
registration by 85 s. A reader instead opens the chain file read-only in its own process and
answers each JSON-RPC request against the last committed block:

1. find the last committed head in one short SQLite read transaction
   (:class:`~ledger.chain.backends._chaindb.CommittedView`): the writer neither waits nor is seen;
2. open the chain at that head, over VMs bounded in time (``_bounded.py``): opening reads a
   few keys, nothing is replayed; everything below the head is immutable, so the rest of the
   request reads the file without holding the transaction open;
3. answer the request through eth-tester and web3's own eth-tester endpoints, exactly as the
   writer's provider would, with every call's gas capped;
4. turn every failure into a JSON-RPC error object with a standard code and a plain message,
   so nothing but plain data ever crosses back to the service.

A reader never writes: the file is opened read-only and the scratch state of a call is dropped
with the snapshot. The process runs at a lower CPU priority than the service, so a busy reader
slows other reads, not writes.
"""

from __future__ import annotations

import contextlib
import os
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

from eth.abc import BlockHeaderAPI
from eth.db.atomic import AtomicDB
from eth.exceptions import (
    FullStack,
    InsufficientFunds,
    InsufficientStack,
    InvalidInstruction,
    InvalidJumpDestination,
    OutOfBoundsRead,
    OutOfGas,
    ReservedBytesInCode,
    StackDepthLimit,
    VMError,
    WriteProtection,
)
from eth.vm.spoof import SpoofTransaction
from eth_tester.exceptions import BlockNotFound, TransactionFailed
from eth_tester.exceptions import ValidationError as TesterValidationError
from eth_utils import ValidationError
from eth_utils.toolz import assoc
from web3.providers.eth_tester.defaults import API_ENDPOINTS
from web3.providers.eth_tester.main import _make_request
from web3.types import RPCResponse

from ledger.chain.backends._bounded import GasCapExceeded, capped_gas_estimate, evm_deadline
from ledger.chain.backends._chaindb import CommittedView
from ledger.chain.backends._tester import (
    DurablePyEVMBackend,
    LogScanningEthereumTester,
    open_read_chain,
    revert_data,
    tester_account_keys,
)
from ledger.chain.backends.reads import ReadLimits, ReadTimeout

__all__ = ["READ_METHODS", "SnapshotNode", "error_response", "serve"]

# What a reader answers; anything else is "method not found" (-32601).
READ_METHODS = frozenset(
    {
        "web3_clientVersion", "net_version", "net_listening", "eth_chainId", "eth_blockNumber",
        "eth_syncing", "eth_accounts", "eth_gasPrice", "eth_maxPriorityFeePerGas", "eth_call",
        "eth_estimateGas", "eth_getCode", "eth_getBalance", "eth_getStorageAt",
        "eth_getTransactionCount", "eth_getBlockByNumber", "eth_getBlockByHash",
        "eth_getTransactionByHash", "eth_getTransactionReceipt", "eth_getLogs", "eth_feeHistory",
    }
)  # fmt: skip
READER_NICENESS = 19  # a reader yields the CPU to the service under contention

# geth's words for each way an EVM run fails (core/vm/errors.go).
_VM_MESSAGES: tuple[tuple[type[VMError], str], ...] = (
    (OutOfGas, "out of gas"),
    (InvalidJumpDestination, "invalid jump destination"),
    (InvalidInstruction, "invalid opcode"),
    (StackDepthLimit, "max call depth exceeded"),
    (InsufficientStack, "stack underflow"),
    (FullStack, "stack limit reached"),
    (WriteProtection, "write protection"),
    (InsufficientFunds, "insufficient balance for transfer"),
    (OutOfBoundsRead, "return data out of bounds"),
    (ReservedBytesInCode, "invalid code: must not begin with 0xef"),
)


def error_response(code: int, message: str, data: str | None = None) -> RPCResponse:
    """A JSON-RPC error answer (the id is the caller's business)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return cast(RPCResponse, {"jsonrpc": "2.0", "id": 0, "error": error})


class SnapshotBackend(DurablePyEVMBackend):
    """eth-tester's py-evm backend over the committed chain, reopened for every request, with
    the gas of every call and the top of every estimate capped."""

    def __init__(self, view: CommittedView, gas_cap: int) -> None:
        self.view = view
        self.gas_cap = gas_cap
        super().__init__(open_read_chain(AtomicDB(view)), tester_account_keys())

    def reopen(self) -> None:
        """Open the chain at the last committed head (inside ``CommittedView.head``)."""
        self.chain = open_read_chain(AtomicDB(self.view))

    def _capped(self, transaction: dict[str, Any]) -> int:
        return min(transaction.get("gas") or self.gas_cap, self.gas_cap)

    def call(self, transaction: dict[str, Any], block_number: Any = "latest") -> bytes:
        capped = {**transaction, "gas": self._capped(transaction)}
        try:
            return super().call(capped, block_number)
        except ValidationError:
            # eth-tester checks an unfunded caller's balance against gas times the base fee;
            # geth skips that check for a call without fees, so run it from a funded account
            fallback = self.get_accounts()[0]
            if capped["from"] == fallback:
                raise
            return super().call({**capped, "from": fallback}, block_number)

    def estimate_gas(self, transaction: dict[str, Any], block_number: Any = "latest") -> int:
        """eth-tester's estimate, searching up to the call's gas (at most the cap); a failure
        is raised as the EVM's own error (a revert keeps its data)."""
        gas = self._capped(transaction)
        unsigned = self._get_normalized_and_unsigned_evm_transaction(
            assoc(transaction, "gas", gas), block_number
        )
        spoofed = SpoofTransaction(unsigned, from_=transaction["from"])
        with self.chain.get_vm(self._estimate_header(block_number)).in_costless_state() as state:
            return capped_gas_estimate(state, spoofed, self.gas_cap)

    def _estimate_header(self, block_number: Any) -> BlockHeaderAPI:
        chain = self.chain
        if block_number in ("latest", "safe", "finalized"):
            return chain.get_canonical_head()
        if block_number == "earliest":
            return chain.get_canonical_block_header_by_number(0)
        if block_number == "pending":
            raise NotImplementedError('"pending" block identifier is unsupported in eth-tester')
        return chain.get_canonical_block_header_by_number(block_number)

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("a reader never writes")

    send_raw_transaction = send_signed_transaction = send_transaction = _refuse
    mine_blocks = apply_withdrawals = _refuse


class SnapshotNode:
    """Answers read-only JSON-RPC requests at the last committed block of ``chain_file``."""

    def __init__(self, chain_file: Path, limits: ReadLimits) -> None:
        self.view = CommittedView(chain_file)
        self.limits = limits
        with self.view.head():
            self.backend = SnapshotBackend(self.view, limits.gas_cap)
        self.tester = LogScanningEthereumTester(backend=self.backend, auto_mine_transactions=False)

    def answer(self, method: str, params: Any, budget: float) -> RPCResponse:
        """One request's answer, or an error object; never raises."""
        if method not in READ_METHODS:
            return error_response(-32601, f"the method {method} does not exist/is not available")
        try:
            with self.view.scratch():
                with self.view.head():
                    self.backend.reopen()
                with evm_deadline(budget):
                    return _make_request(method, params, API_ENDPOINTS, self.tester, "0")
        except (ReadTimeout, GasCapExceeded) as exc:
            return error_response(-32000, str(exc))
        except (TransactionFailed, VMError) as exc:
            data = revert_data(exc)
            if data is not None:
                return error_response(3, "execution reverted", "0x" + data.hex())
            return error_response(-32000, _vm_message(exc))
        except BlockNotFound:  # a state read at a block the chain does not have: geth's words
            return error_response(-32000, "header not found")
        except NotImplementedError as exc:
            return error_response(-32601, str(exc) or f"{method} is not available")
        except (
            ValidationError,
            TesterValidationError,
            ValueError,
            TypeError,
            KeyError,
            IndexError,
        ) as exc:
            return error_response(-32602, f"invalid params: {_plain(exc)}")
        except Exception as exc:  # a reader's own failure, reported the JSON-RPC way
            return error_response(-32603, f"internal error ({type(exc).__name__})")

    def close(self) -> None:
        self.view.close()


def _plain(exc: Exception) -> str:
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _vm_message(exc: BaseException) -> str:
    seen: BaseException | None = exc
    for _ in range(8):  # eth-tester and web3 wrap the VM error a few times over
        if seen is None:
            break
        for cls, message in _VM_MESSAGES:
            if isinstance(seen, cls):
                return message
        seen = seen.__cause__ or seen.__context__
    return "execution failed"


def serve(conn: Connection, chain_file: str, limits: ReadLimits) -> None:
    """A reader process's loop: ``(method, params, budget)`` in, a response dict out, until the
    service closes the pipe (or dies, which closes it too)."""
    with contextlib.suppress(OSError):  # not permitted here: the reader still works
        os.nice(READER_NICENESS)
    node = SnapshotNode(Path(chain_file), limits)
    conn.send("ready")
    try:
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):
                return
            if request is None:
                return
            method, params, budget = request
            conn.send(node.answer(method, params, budget))
    finally:
        node.close()

"""Read-only Ethereum JSON-RPC over the service's own chain, served at ``/rpc``.

So an auditor's own tools (web3.py, ethers, foundry's ``cast``) work against the
zero-configuration service, whose embedded chain has no node of its own. Only reads are served:
calls, logs, receipts, blocks, code and state; every method that could write or sign is
refused with a JSON-RPC error.

Anyone may call it, so it is bounded like a public node (every bound is a setting):

* every parameter is checked before anything runs (``_rpc_params.py``), and a bad one is a
  ``-32602`` with a plain message;
* ``eth_call`` and ``eth_estimateGas`` get at most ``rpc_gas_cap`` gas and ``rpc_evm_timeout``
  seconds each; one request (a whole batch) at most ``rpc_request_timeout``;
* ``eth_getLogs`` spans at most ``rpc_max_log_blocks`` blocks and returns at most
  ``rpc_max_logs`` logs; a batch holds at most ``rpc_max_batch`` calls;
* the calls run on the backend's read node
  (:meth:`~ledger.chain.backends.base.ChainBackend.read_node`): on the embedded chain, reader
  processes that never take the lock that writes take.

Errors use the standard codes: -32700 parse error, -32600 invalid request, -32601 method not
found, -32602 invalid params, -32603 internal error, 3 execution reverted (with its data),
-32000 execution failed or aborted, -32005 limit exceeded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_bloom import BloomFilter
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import BlockNotFound, ContractLogicError, TransactionNotFound, Web3RPCError

from api.service import _rpc_params as p
from api.service._core import Core
from ledger.chain.backends.reads import ReadersBusy, ReadLimits, ReadTimeout, read_deadline
from ledger.errors import ChainUnavailable

__all__ = ["LIMIT_EXCEEDED", "REFUSED", "Rpc", "parse_error"]

log = logging.getLogger("provenance.api")

REFUSED = -32601  # "method not found": what public read-only endpoints answer for writes
LIMIT_EXCEEDED = -32005
WRITE_METHODS = {
    "eth_sendRawTransaction", "eth_sendTransaction", "eth_sign", "eth_signTransaction",
    "eth_signTypedData", "eth_signTypedData_v4", "personal_sign",
}  # fmt: skip
_FEE_FIELDS = ("gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "chainId", "type")
MAX_FEE_HISTORY_BLOCKS = 1024  # geth's bound


class RpcLimitExceeded(Exception):
    """A request within the method's rules but past one of the endpoint's bounds."""


def _json(value: Any) -> Any:
    """web3's Python values back to JSON-RPC's wire form (quantities as hex)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray | HexBytes):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: _json(v) for k, v in dict(value).items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


def _bloom(value: Any) -> str:
    """A 256-byte bloom as 512 hex digits (eth-tester keeps it as an int)."""
    number = value if isinstance(value, int) else int.from_bytes(bytes(value), "big")
    return "0x" + number.to_bytes(256, "big").hex()


def _log(log: Any) -> dict[str, Any]:
    entry = {k: v for k, v in dict(log).items() if k != "type"}  # eth-tester's "mined"
    entry["removed"] = False
    return entry


def _block_json(block: Any) -> Any:
    if block is None:
        return None
    block = dict(block)
    block["logsBloom"] = _bloom(block.get("logsBloom", 0))
    return block


def _receipt_json(receipt: Any) -> Any:
    """A receipt as nodes give it: with its logs bloom, without eth-tester's extras."""
    if receipt is None:
        return None
    receipt = {k: v for k, v in dict(receipt).items() if k not in ("state_root", "stateRoot")}
    receipt["logs"] = [_log(log) for log in receipt.get("logs", [])]
    bloom = BloomFilter()
    for log in receipt["logs"]:
        bloom.add(bytes.fromhex(log["address"][2:]))
        for topic in log["topics"]:
            bloom.add(bytes(topic))
    receipt["logsBloom"] = _bloom(int(bloom))
    return receipt


@dataclass(frozen=True)
class RpcLimits:
    """The endpoint's bounds, from the settings."""

    read: ReadLimits
    request_timeout: float
    max_batch: int
    max_log_blocks: int
    max_logs: int


@dataclass(frozen=True)
class _Method:
    params: tuple[p.Param, ...]
    run: Callable[..., Any]


class _Calls:
    """The read methods, over one read node and within one request's limits."""

    def __init__(self, w3: Web3, limits: RpcLimits) -> None:
        self.w3, self.eth, self.limits = w3, w3.eth, limits

    def capped(self, call: dict[str, Any]) -> dict[str, Any]:
        """A call as geth runs it: no fee fields (so no balance check), gas at most the cap."""
        tx = {k: v for k, v in call.items() if k not in _FEE_FIELDS}
        cap = self.limits.read.gas_cap
        tx["gas"] = min(tx.get("gas", cap), cap)
        return tx

    def call(self, call: dict[str, Any], block: Any, _overrides: Any = None) -> Any:
        return self.eth.call(self.capped(call), block)

    def estimate_gas(self, call: dict[str, Any], block: Any, _overrides: Any = None) -> Any:
        return self.eth.estimate_gas(self.capped(call), block)

    def get_logs(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        if "blockHash" not in query:
            lower, upper = (self._number(query.get(k, "latest")) for k in ("fromBlock", "toBlock"))
            span = upper - lower + 1
            if span > self.limits.max_log_blocks:
                raise RpcLimitExceeded(
                    f"block range too large: {span} blocks, at most {self.limits.max_log_blocks}"
                )
        logs = self.eth.get_logs(query)
        if len(logs) > self.limits.max_logs:
            raise RpcLimitExceeded(f"query returned more than {self.limits.max_logs} results")
        return [_log(log) for log in logs]

    def _number(self, block: int | str) -> int:
        if isinstance(block, int):
            return block
        if block == "earliest":
            return 0
        latest = self.eth.block_number
        return latest + 1 if block == "pending" else latest

    def fee_history(self, count: int, newest: Any, percentiles: list[float] | None) -> Any:
        if not 1 <= count <= MAX_FEE_HISTORY_BLOCKS:
            raise p.InvalidParams(
                f"invalid argument 0 (block count): from 1 to {MAX_FEE_HISTORY_BLOCKS} blocks"
            )
        return self.eth.fee_history(count, newest, percentiles)


def _methods() -> dict[str, _Method]:
    latest = p.Param("block", p.block, "latest")
    at = p.Param("address", p.address)
    overrides = p.Param("state overrides", p.state_overrides, None)
    call = (p.Param("transaction", p.call_object), latest, overrides)
    m = _Method
    return {
        "web3_clientVersion": m((), lambda c: "provenance-ledger/0.1 (read-only)"),
        "net_version": m((), lambda c: str(c.eth.chain_id)),
        "net_listening": m((), lambda c: True),
        "eth_chainId": m((), lambda c: c.eth.chain_id),
        "eth_blockNumber": m((), lambda c: c.eth.block_number),
        "eth_syncing": m((), lambda c: False),
        "eth_accounts": m((), lambda c: []),
        "eth_gasPrice": m((), lambda c: c.eth.gas_price),
        "eth_maxPriorityFeePerGas": m((), lambda c: 10**9),
        "eth_call": m(call, lambda c, tx, block, _: c.call(tx, block)),
        "eth_estimateGas": m(call, lambda c, tx, block, _: c.estimate_gas(tx, block)),
        "eth_getCode": m((at, latest), lambda c, a, b: c.eth.get_code(a, b)),
        "eth_getBalance": m((at, latest), lambda c, a, b: c.eth.get_balance(a, b)),
        "eth_getStorageAt": m(
            (at, p.Param("slot", p.quantity), latest),
            lambda c, a, slot, b: c.eth.get_storage_at(a, slot, b),
        ),
        "eth_getTransactionCount": m(
            (at, latest), lambda c, a, b: c.eth.get_transaction_count(a, b)
        ),
        "eth_getBlockByNumber": m(
            (p.Param("block", p.block), p.Param("full transactions", p.boolean, False)),
            lambda c, b, full: _block_json(c.eth.get_block(b, full)),
        ),
        "eth_getBlockByHash": m(
            (p.Param("block hash", p.hash32), p.Param("full transactions", p.boolean, False)),
            lambda c, h, full: _block_json(c.eth.get_block(h, full)),
        ),
        "eth_getTransactionByHash": m(
            (p.Param("transaction hash", p.hash32),), lambda c, h: c.eth.get_transaction(h)
        ),
        "eth_getTransactionReceipt": m(
            (p.Param("transaction hash", p.hash32),),
            lambda c, h: _receipt_json(c.eth.get_transaction_receipt(h)),
        ),
        "eth_getLogs": m((p.Param("filter", p.log_filter),), lambda c, q: c.get_logs(q)),
        "eth_feeHistory": m(
            (
                p.Param("block count", p.quantity),
                p.Param("newest block", p.block),
                p.Param("reward percentiles", p.percentiles, None),
            ),
            lambda c, n, newest, pct: c.fee_history(n, newest, pct),
        ),
    }


METHODS = _methods()


def _error(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def _node_error(request_id: Any, exc: Web3RPCError) -> dict[str, Any]:
    """The read node's own error object, passed on with only its plain fields."""
    response = exc.rpc_response if isinstance(exc.rpc_response, dict) else {}
    error = response.get("error") if isinstance(response.get("error"), dict) else {}
    code = error.get("code") if isinstance(error.get("code"), int) else -32000
    message = error.get("message") if isinstance(error.get("message"), str) else "call failed"
    data = error.get("data") if isinstance(error.get("data"), str) else None
    return _error(request_id, code, message, data)


def _answer(calls: _Calls, message: Any) -> dict[str, Any]:
    if not isinstance(message, dict) or not isinstance(message.get("method"), str):
        return _error(None, -32600, "invalid request: want an object with a method")
    request_id = message.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, str | int | float | None):
        return _error(None, -32600, "invalid request: id must be a string, number or null")
    method = message["method"]
    if method in WRITE_METHODS:
        return _error(request_id, REFUSED, f"{method} is refused: this endpoint is read-only")
    handler = METHODS.get(method)
    if handler is None:
        return _error(request_id, REFUSED, f"the method {method} does not exist/is not available")
    try:
        args = p.parse_params(handler.params, message.get("params"))
        result = handler.run(calls, *args)
    except p.InvalidParams as exc:
        return _error(request_id, -32602, str(exc))
    except ContractLogicError as exc:
        return _error(request_id, 3, "execution reverted", exc.data)
    except Web3RPCError as exc:
        return _node_error(request_id, exc)
    except (BlockNotFound, TransactionNotFound):
        result = None
    except ReadTimeout as exc:
        return _error(request_id, -32000, str(exc))
    except (ReadersBusy, RpcLimitExceeded) as exc:
        return _error(request_id, LIMIT_EXCEEDED, str(exc))
    except (ChainUnavailable, OSError):  # closed, or a node that cannot be reached
        return _error(request_id, -32603, "the chain is unavailable; retry later")
    except Exception:  # the node's own failure: logged, reported the JSON-RPC way
        log.exception("JSON-RPC %s failed", method)
        return _error(request_id, -32603, "internal error")
    return {"jsonrpc": "2.0", "id": request_id, "result": _json(result)}


class Rpc:
    """Answers JSON-RPC payloads (one message or a batch) with read methods, within limits."""

    def __init__(self, core: Core) -> None:
        self._core = core
        s = core.settings
        self.limits = RpcLimits(
            read=ReadLimits(
                gas_cap=s.rpc_gas_cap, time_budget=s.rpc_evm_timeout, readers=s.rpc_readers
            ),
            request_timeout=s.rpc_request_timeout,
            max_batch=s.rpc_max_batch,
            max_log_blocks=s.rpc_max_log_blocks,
            max_logs=s.rpc_max_logs,
        )

    def answer(self, payload: Any) -> Any:
        """The answer to a parsed JSON-RPC payload; never raises (errors are JSON-RPC errors).

        A batch is answered call by call within one deadline; an empty batch or one past
        ``rpc_max_batch`` is a single invalid-request error, as geth answers it.
        """
        if isinstance(payload, list):
            if not payload:
                return _error(None, -32600, "invalid request: empty batch")
            if len(payload) > self.limits.max_batch:
                return _error(
                    None, -32600, f"batch too large: {len(payload)} calls, "
                    f"at most {self.limits.max_batch}",
                )  # fmt: skip
        try:
            calls = _Calls(self._core.backend.read_node(self.limits.read), self.limits)
        except ChainUnavailable:
            return _error(None, -32603, "the chain is unavailable; retry later")
        with read_deadline(self.limits.request_timeout):
            if isinstance(payload, list):
                return [_answer(calls, message) for message in payload]
            return _answer(calls, payload)


def parse_error() -> dict[str, Any]:
    return _error(None, -32700, "parse error")

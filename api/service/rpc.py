"""Read-only Ethereum JSON-RPC over the service's own chain, served at ``/rpc``.

So an auditor's own tools (web3.py, ethers, foundry's ``cast``) work against the
zero-configuration service, whose embedded chain has no node of its own. Only reads are served:
calls, logs, receipts, blocks, code and state; every method that could write or sign is
refused with a JSON-RPC error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eth_bloom import BloomFilter
from eth_utils import ValidationError as EthValidationError
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import BlockNotFound, ContractLogicError, TransactionNotFound

from api.service._core import Core

__all__ = ["MAX_BATCH", "Rpc", "parse_error"]

MAX_BATCH = 100

_TAGS = {"latest", "earliest", "pending", "safe", "finalized"}
_QUANTITY_FIELDS = {
    "gas", "gasPrice", "value", "nonce", "maxFeePerGas", "maxPriorityFeePerGas", "chainId"
}  # fmt: skip
REFUSED = -32601  # "method not found": what public read-only endpoints answer for writes
WRITE_METHODS = {
    "eth_sendRawTransaction", "eth_sendTransaction", "eth_sign", "eth_signTransaction",
    "eth_signTypedData", "eth_signTypedData_v4", "personal_sign",
}  # fmt: skip


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


def _call_tx(call: dict[str, Any]) -> dict[str, Any]:
    """A call as geth runs it: no fee fields means no balance check. eth-tester checks the
    sender's balance against gas times the base fee, so an unfunded ``from`` is dropped."""
    tx = {
        k: v
        for k, v in _tx(call).items()
        if k not in ("gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "chainId")
    }
    return tx


def _block(value: Any = "latest") -> Any:
    if isinstance(value, str) and value in _TAGS:
        return value
    if isinstance(value, str) and value.startswith("0x") and len(value) == 66:
        return value  # a block hash (EIP-1898 style callers)
    if isinstance(value, dict):
        return value.get("blockHash") or _block(value.get("blockNumber", "latest"))
    return int(value, 16) if isinstance(value, str) else int(value)


def _addr(value: Any) -> Any:
    """Callers send lowercase addresses; web3.py wants checksummed ones."""
    if isinstance(value, list):
        return [_addr(v) for v in value]
    return to_checksum_address(value) if isinstance(value, str) else value


def _tx(call: dict[str, Any]) -> dict[str, Any]:
    tx = {}
    for key, value in call.items():
        if key in _QUANTITY_FIELDS and isinstance(value, str):
            tx[key] = int(value, 16)
        elif key == "input":
            tx["data"] = value
        elif key in ("to", "from"):
            tx[key] = _addr(value)
        else:
            tx[key] = value
    return tx


def _logs_filter(query: dict[str, Any]) -> dict[str, Any]:
    result = dict(query)
    for key in ("fromBlock", "toBlock"):
        if key in result:
            result[key] = _block(result[key])
    if "address" in result:
        result["address"] = _addr(result["address"])
    return result


def _read_call(run: Callable[..., Any], call: dict[str, Any], block: Any) -> Any:
    tx = _call_tx(call)
    try:
        return run(tx, _block(block))
    except EthValidationError:
        if "from" not in tx:
            raise
        tx.pop("from")  # eth-tester's balance check on an unfunded caller; geth skips it
        return run(tx, _block(block))


def _methods(w3: Web3) -> dict[str, Callable[..., Any]]:
    eth = w3.eth
    return {
        "web3_clientVersion": lambda: "provenance-ledger/0.1 (read-only)",
        "net_version": lambda: str(eth.chain_id),
        "net_listening": lambda: True,
        "eth_chainId": lambda: eth.chain_id,
        "eth_blockNumber": lambda: eth.block_number,
        "eth_syncing": lambda: False,
        "eth_accounts": lambda: [],
        "eth_gasPrice": lambda: eth.gas_price,
        "eth_maxPriorityFeePerGas": lambda: 10**9,
        "eth_call": lambda call, block="latest", *_: _read_call(eth.call, call, block),
        "eth_estimateGas": lambda call, block="latest", *_: _read_call(
            eth.estimate_gas, call, block
        ),
        "eth_getCode": lambda address, block="latest": eth.get_code(_addr(address), _block(block)),
        "eth_getBalance": lambda address, block="latest": eth.get_balance(
            _addr(address), _block(block)
        ),
        "eth_getStorageAt": lambda address, slot, block="latest": eth.get_storage_at(
            _addr(address), int(slot, 16), _block(block)
        ),
        "eth_getTransactionCount": lambda address, block="latest": eth.get_transaction_count(
            _addr(address), _block(block)
        ),
        "eth_getBlockByNumber": lambda block, full=False: _block_json(
            eth.get_block(_block(block), full)
        ),
        "eth_getBlockByHash": lambda block_hash, full=False: _block_json(
            eth.get_block(block_hash, full)
        ),
        "eth_getTransactionByHash": lambda tx_hash: eth.get_transaction(tx_hash),
        "eth_getTransactionReceipt": lambda tx_hash: _receipt_json(
            eth.get_transaction_receipt(tx_hash)
        ),
        "eth_getLogs": lambda query: [_log(log) for log in eth.get_logs(_logs_filter(query))],
        "eth_feeHistory": lambda count, newest, percentiles=None: eth.fee_history(
            int(count, 16) if isinstance(count, str) else count, _block(newest), percentiles
        ),
    }


def _error(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def _answer(w3: Web3, message: Any) -> dict[str, Any]:
    if not isinstance(message, dict) or not isinstance(message.get("method"), str):
        return _error(None, -32600, "invalid request")
    request_id, method = message.get("id"), message["method"]
    params = message.get("params") or []
    if method in WRITE_METHODS:
        return _error(request_id, REFUSED, f"{method} is refused: this endpoint is read-only")
    handler = _methods(w3).get(method)
    if handler is None:
        return _error(request_id, REFUSED, f"the method {method} does not exist/is not available")
    try:
        result = handler(*params) if isinstance(params, list) else handler(**params)
    except ContractLogicError as exc:
        return _error(request_id, 3, "execution reverted", exc.data)
    except (BlockNotFound, TransactionNotFound):
        result = None
    except (TypeError, ValueError) as exc:
        return _error(request_id, -32602, f"invalid params: {exc}")
    except Exception as exc:  # the node's own failure, reported the JSON-RPC way
        return _error(request_id, -32603, f"internal error: {type(exc).__name__}")
    return {"jsonrpc": "2.0", "id": request_id, "result": _json(result)}


class Rpc:
    """Answers JSON-RPC messages (single or batch, at most ``MAX_BATCH``) with read methods."""

    def __init__(self, core: Core) -> None:
        self._core = core

    def answer(self, message: Any) -> dict[str, Any]:
        """The answer to one JSON-RPC message (never raises: errors are JSON-RPC errors)."""
        return _answer(self._core.backend.w3, message)


def parse_error() -> dict[str, Any]:
    return _error(None, -32700, "parse error")

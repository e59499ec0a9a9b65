"""The few chain reads a verifier makes, without web3: JSON-RPC over HTTP with the standard
library, or the embedded chain's eth-tester in process, behind one small protocol.

Why not web3: ``import web3`` alone costs about 0.6 s (eth_account, eth_keyfile, py_ecc's BLS,
aiohttp), more than an auditor's whole ``provenance verify`` may take, and its request and
result formatters cost about a millisecond per call, a third of an ``eth_call`` on the embedded
chain. A verification needs five methods: ``eth_chainId``, ``eth_call``, ``eth_getLogs``,
``eth_getBlockByNumber`` and, over HTTP, a JSON-RPC batch.

:class:`HttpTransport` keeps one keep-alive connection per thread and retries a read once when
a kept-alive connection was closed under it. The embedded chain brings its own transport
(:class:`ledger.chain.backends._transport.EmbeddedTransport`, eth-tester in process): a
backend names its fastest transport (``ChainBackend.transport``), so this package never imports
a backend.

Failures are typed: an unreachable node is :class:`~ledger.errors.ChainUnavailable`, a revert
is :class:`CallReverted` (with the revert data), and any other JSON-RPC error is
:class:`NodeError` (a node that cannot serve an old block's state answers that way).
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

from ledger.errors import ChainUnavailable, LedgerError

__all__ = [
    "BlockHead",
    "BlockRef",
    "CallReverted",
    "ChainTransport",
    "HttpTransport",
    "NodeError",
    "RawLog",
]

BlockRef = int | str
"""A block number, or a tag such as ``"latest"``."""


class CallReverted(LedgerError):
    """An ``eth_call`` reverted; ``data`` is the raw revert data (may be empty)."""

    def __init__(self, message: str, data: bytes) -> None:
        super().__init__(message)
        self.data = data


class NodeError(LedgerError):
    """The node answered a request with a JSON-RPC error other than a revert."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class BlockHead(NamedTuple):
    """A block as a verifier needs it: where it is, which one it is, and when."""

    number: int
    hash: str
    timestamp: int


class RawLog(NamedTuple):
    """One log entry, undecoded; hashes and addresses as 0x-hex, topics as bytes."""

    address: str
    topics: tuple[bytes, ...]
    data: bytes
    block_number: int
    block_hash: str
    log_index: int
    tx_hash: str


class ChainTransport(Protocol):
    """The reads a verifier makes, whatever carries them."""

    def chain_id(self) -> int: ...

    def call(self, to: str, data: bytes, *, sender: str, block: BlockRef = "latest") -> bytes:
        """Run a read-only call; raises :class:`CallReverted` or :class:`NodeError`."""
        ...

    def call_many(
        self, calls: Sequence[tuple[str, bytes]], *, sender: str, block: BlockRef = "latest"
    ) -> list[bytes]:
        """Several calls at one block, in one round trip where the carrier allows it."""
        ...

    def logs(
        self,
        address: str | list[str],
        topics: Sequence[bytes | None],
        from_block: int,
        to_block: BlockRef,
    ) -> list[RawLog]: ...

    def block(self, ref: BlockRef = "latest") -> BlockHead | None: ...


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _quantity(ref: BlockRef) -> str:
    return hex(ref) if isinstance(ref, int) else ref


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return bytes.fromhex(str(value).removeprefix("0x"))


def _int(value: Any) -> int:
    return value if isinstance(value, int) else int(value, 16)


def _hash(value: Any) -> str:
    return _hex(value) if isinstance(value, bytes | bytearray) else str(value).lower()


def _raw_log(entry: dict[str, Any]) -> RawLog:
    """A log from either carrier: JSON-RPC camelCase or eth-tester snake_case."""

    def field(camel: str, snake: str) -> Any:
        return entry[camel] if camel in entry else entry[snake]

    return RawLog(
        address=str(entry["address"]),
        topics=tuple(_bytes(t) for t in entry["topics"]),
        data=_bytes(entry["data"]),
        block_number=_int(field("blockNumber", "block_number")),
        block_hash=_hash(field("blockHash", "block_hash")),
        log_index=_int(field("logIndex", "log_index")),
        tx_hash=_hash(field("transactionHash", "transaction_hash")),
    )


def _head(block: dict[str, Any] | None) -> BlockHead | None:
    if block is None:
        return None
    return BlockHead(_int(block["number"]), _hash(block["hash"]), _int(block["timestamp"]))


# --------------------------------------------------------------------------------------------
# JSON-RPC over HTTP
# --------------------------------------------------------------------------------------------


class HttpTransport:
    """JSON-RPC 2.0 over HTTP(S) with :mod:`http.client`: one keep-alive connection per thread.

    ``headers`` go with every request (an ``Authorization`` for a node, or a service's
    ``/rpc``, that rate-limits anonymous callers)."""

    def __init__(
        self, url: str, *, timeout: float = 10.0, headers: Mapping[str, str] | None = None
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._timeout = timeout
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            **(headers or {}),
        }
        self._local = threading.local()
        self._ids = itertools.count(1)
        self._chain_id: int | None = None

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            connection = cls(self._host, self._port, timeout=self._timeout)
            self._local.connection = connection
        return connection

    def _post(self, payload: Any) -> Any:
        body = json.dumps(payload).encode()
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request("POST", self._path, body, self._headers)
                response = connection.getresponse()
                text = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                connection.close()
                self._local.connection = None
                if attempt == 2:  # a kept-alive connection may be closed under us once
                    raise ChainUnavailable(f"the chain node is unreachable: {exc}") from exc
                continue
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                self._local.connection = None
                raise ChainUnavailable(f"the chain node is unreachable: {exc}") from exc
            if response.status != 200:
                raise NodeError(f"HTTP {response.status} from {self.url}: {text[:200]!r}")
            try:
                return json.loads(text)
            except ValueError:
                raise NodeError(f"{self.url} did not answer JSON-RPC: {text[:200]!r}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _result(self, answer: Any) -> Any:
        if not isinstance(answer, dict):
            raise NodeError(f"not a JSON-RPC answer: {str(answer)[:200]}")
        error = answer.get("error")
        if error is None:
            return answer.get("result")
        if not isinstance(error, dict):
            raise NodeError(f"JSON-RPC error: {error}")
        message, data = str(error.get("message", "")), error.get("data")
        if isinstance(data, dict):  # some nodes wrap it: {"data": {"data": "0x..."}}
            data = data.get("data")
        if error.get("code") == 3 or "revert" in message.lower():
            revert = _bytes(data) if isinstance(data, str) and data.startswith("0x") else b""
            raise CallReverted(f"the call reverted: {message}", revert)
        raise NodeError(f"JSON-RPC error {error.get('code')}: {message}", error.get("code"))

    def request(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC request; its ``result``."""
        return self._result(
            self._post(
                {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
            )
        )

    def batch(self, requests: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Several requests in one JSON-RPC batch; their results in order (an error raises)."""
        ids = [next(self._ids) for _ in requests]
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": p}
            for i, (m, p) in zip(ids, requests, strict=True)
        ]
        answers = self._post(payload)
        if not isinstance(answers, list):  # a node without batches: one request at a time
            return [self.request(method, params) for method, params in requests]
        by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
        return [self._result(by_id.get(i, {"error": {"message": "missing"}})) for i in ids]

    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = _int(self.request("eth_chainId", []))
        return self._chain_id

    def call(self, to: str, data: bytes, *, sender: str, block: BlockRef = "latest") -> bytes:
        return _bytes(
            self.request(
                "eth_call", [{"from": sender, "to": to, "data": _hex(data)}, _quantity(block)]
            )
        )

    def call_many(
        self, calls: Sequence[tuple[str, bytes]], *, sender: str, block: BlockRef = "latest"
    ) -> list[bytes]:
        if len(calls) == 1:
            return [self.call(calls[0][0], calls[0][1], sender=sender, block=block)]
        requests = [
            ("eth_call", [{"from": sender, "to": to, "data": _hex(data)}, _quantity(block)])
            for to, data in calls
        ]
        return [_bytes(result) for result in self.batch(requests)]

    def logs(
        self,
        address: str | list[str],
        topics: Sequence[bytes | None],
        from_block: int,
        to_block: BlockRef,
    ) -> list[RawLog]:
        query = {
            "address": address,
            "fromBlock": _quantity(from_block),
            "toBlock": _quantity(to_block),
            "topics": [None if t is None else _hex(t) for t in topics],
        }
        return [_raw_log(entry) for entry in self.request("eth_getLogs", [query]) or []]

    def block(self, ref: BlockRef = "latest") -> BlockHead | None:
        return _head(self.request("eth_getBlockByNumber", [_quantity(ref), False]))

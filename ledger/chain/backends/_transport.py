"""The embedded chain as a :class:`~ledger.reading._jsonrpc.ChainTransport`: eth-tester in
process, so verification on the service's own chain skips JSON-RPC and web3 alike.

It calls eth-tester directly under the backend's lock, as the backend's own provider does;
eth-tester charges a call's gas to its sender, so in process a call is made from the chain's
first (funded) account, whatever ``sender`` the reader names. Logs and blocks are parsed by the
reader's own helpers, so both transports hand the reader the same values.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

from eth_tester.exceptions import BlockNotFound

from ledger.chain.backends._tester import revert_data
from ledger.errors import ChainUnavailable, LedgerError
from ledger.reading._jsonrpc import (
    BlockHead,
    BlockRef,
    CallReverted,
    NodeError,
    RawLog,
    _bytes,
    _head,
    _hex,
    _raw_log,
)

__all__ = ["EmbeddedTransport"]


class _InProcess(Protocol):
    """What the transport needs of :class:`~ledger.chain.backends.embedded.EmbeddedBackend`
    (named structurally, so that the backend can import this module)."""

    @property
    def ethereum_tester(self) -> Any: ...

    @property
    def lock(self) -> threading.RLock: ...

    @property
    def w3(self) -> Any: ...


class EmbeddedTransport:
    """eth-tester in process, one request at a time under the backend's lock."""

    def __init__(self, backend: _InProcess) -> None:
        self._backend = backend
        self._tester = backend.ethereum_tester
        self._lock = backend.lock
        self._funded = self._tester.get_accounts()[0]
        self._chain_id: int | None = None

    def _run(self, action: Any) -> Any:
        with self._lock:
            # The backend's provider refuses work once it is closed or a block failed to
            # persist; the same rule holds here (see ledger.chain.backends.embedded).
            provider = self._backend.w3.provider
            if getattr(provider, "closed", False) or getattr(provider, "failure", None):
                raise ChainUnavailable("the embedded chain is closed or failed")
            try:
                return action()
            except LedgerError:
                raise
            except Exception as exc:
                data = revert_data(exc)
                if data is not None:
                    raise CallReverted("the call reverted", data) from None
                raise NodeError(f"the embedded chain refused the request: {exc}") from exc

    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self._run(lambda: self._tester.backend.chain.chain_id))
        return self._chain_id

    def call(self, to: str, data: bytes, *, sender: str, block: BlockRef = "latest") -> bytes:
        tx = {"from": self._funded, "to": to, "data": _hex(data)}
        return _bytes(self._run(lambda: self._tester.call(tx, block)))

    def call_many(
        self, calls: Sequence[tuple[str, bytes]], *, sender: str, block: BlockRef = "latest"
    ) -> list[bytes]:
        return [self.call(to, data, sender=sender, block=block) for to, data in calls]

    def logs(
        self,
        address: str | list[str],
        topics: Sequence[bytes | None],
        from_block: int,
        to_block: BlockRef,
    ) -> list[RawLog]:
        query_topics = [None if t is None else _hex(t) for t in topics]
        entries = self._run(
            lambda: self._tester.get_logs(
                from_block=from_block,
                to_block=to_block if isinstance(to_block, int) else self._number(to_block),
                address=tuple(address) if isinstance(address, list) else address,
                topics=query_topics,
            )
        )
        return [_raw_log(dict(entry)) for entry in entries]

    def _number(self, tag: str) -> int:
        return int(self._tester.get_block_by_number(tag)["number"])

    def block(self, ref: BlockRef = "latest") -> BlockHead | None:
        def get() -> Any:
            try:
                return self._tester.get_block_by_number(ref)
            except BlockNotFound:
                return None

        return _head(self._run(get))

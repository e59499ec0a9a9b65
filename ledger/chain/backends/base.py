"""The seam between the ledger client and a chain.

A backend owns a connected :class:`web3.Web3` and knows how to make a write durable. The
client signs every transaction with the service's own key and sends it raw, so the same code
path serves the embedded chain and any JSON-RPC node (web3.py's ``BaseProvider`` pattern: the
in-memory chain is just another backend).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from web3 import Web3
from web3.exceptions import TransactionNotFound

from ledger.chain.backends.reads import ReadLimits

if TYPE_CHECKING:
    from ledger.reading._jsonrpc import ChainTransport

__all__ = ["ChainBackend"]


class ChainBackend(ABC):
    """A connected chain. Subclasses set :attr:`kind` and build :attr:`w3`."""

    kind: ClassVar[str]

    @property
    @abstractmethod
    def w3(self) -> Web3:
        """The connected web3 instance (reads, calls, raw transactions, logs)."""

    def read_node(self, limits: ReadLimits) -> Web3:
        """web3 for reads that anyone may ask for (the service's ``/rpc``), within ``limits``.

        A JSON-RPC node bounds its own calls (geth's ``--rpc.gascap``, ``--rpc.evmtimeout``),
        so by default this is :attr:`w3` itself; the embedded chain serves them from reader
        processes that never take its lock.
        """
        return self.w3

    def head_number(self) -> int:
        """The number of the chain's latest block: web3's ``block_number`` here; the embedded
        chain reads py-evm's canonical head."""
        return self.w3.eth.block_number

    def send_raw(self, raw: bytes) -> None:
        """Hand a signed transaction to the chain: web3's ``send_raw_transaction`` here; the
        embedded chain takes it in process, without web3."""
        self.w3.eth.send_raw_transaction(raw)

    def read_block(self, ref: int | str) -> Mapping[str, Any]:
        """A block's ``number``, ``hash``, ``parentHash``, ``timestamp``, ``gasLimit``,
        ``baseFeePerGas`` and ``transactions`` (their hashes), as web3's ``get_block`` names
        them; ``ref`` is ``"latest"``, a number or a 0x hash. Raises web3's ``BlockNotFound``.
        Here web3's read; the embedded chain answers from py-evm, without web3."""
        return self.w3.eth.get_block(ref)  # type: ignore[arg-type]

    def read_receipt(self, tx_hash: str) -> Mapping[str, Any] | None:
        """A mined transaction's receipt as web3 answers it, or None while it is not mined.
        Here web3's read; the embedded chain answers from py-evm, without web3."""
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None

    def transport(self, *, timeout: float = 10.0) -> ChainTransport:
        """The fastest web3-free transport to this chain, for :mod:`ledger.reading`: JSON-RPC
        to the backend's URL here; the embedded chain answers in process."""
        from ledger.reading._jsonrpc import HttpTransport

        url = getattr(self, "url", None)
        if not isinstance(url, str):
            raise ValueError(f"no transport for a {self.kind} backend without a URL")
        return HttpTransport(url, timeout=timeout)

    @property
    def confirmations(self) -> int:
        """Blocks to wait on top of a write's block before it counts as final."""
        return 0

    def fund(self, address: str, wei: int) -> None:
        """Give ``address`` ether from the chain's own faucet; only local chains have one."""
        raise NotImplementedError(f"the {self.kind} backend has no faucet")

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release files and connections. Idempotent."""

    def __enter__(self) -> ChainBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

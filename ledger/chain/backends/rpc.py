"""Any Ethereum JSON-RPC node as the chain: anvil in development; geth, besu, reth or an L2 in
production. This is how the service grows past one machine."""

from __future__ import annotations

from typing import ClassVar

from web3 import HTTPProvider, Web3

from ledger.chain.backends.base import ChainBackend

__all__ = ["RpcBackend"]


class RpcBackend(ChainBackend):
    """A node reached over HTTP JSON-RPC.

    ``confirmations`` blocks must sit on top of a write's block before it counts as final
    (0 suits an instant-finality dev node; a public chain wants more).
    """

    kind: ClassVar[str] = "rpc"

    def __init__(self, url: str, *, confirmations: int = 0, timeout: float = 10.0) -> None:
        if confirmations < 0:
            raise ValueError("confirmations must be 0 or more")
        self.url = url
        self._confirmations = confirmations
        self._w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": timeout}))

    @property
    def w3(self) -> Web3:
        return self._w3

    @property
    def confirmations(self) -> int:
        return self._confirmations

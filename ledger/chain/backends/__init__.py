"""Chain backends: the embedded eth-tester chain and JSON-RPC nodes."""

from ledger.chain.backends.base import ChainBackend

__all__ = ["ChainBackend"]

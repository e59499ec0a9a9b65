"""Chain backends: the embedded eth-tester chain and JSON-RPC nodes."""

from ledger.backends.base import ChainBackend

__all__ = ["ChainBackend"]

"""Reading the contract without web3 (raw JSON-RPC), so verification and the CLI start fast."""

__all__: list[str] = []

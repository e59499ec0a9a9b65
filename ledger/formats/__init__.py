"""Merkle trees, row leaves and EIP-712 receipts: formats that agree on and off chain."""

__all__: list[str] = []

"""Provenance Ledger's chain side: records, errors and verify here, the rest in sub-packages."""

__all__: list[str] = []

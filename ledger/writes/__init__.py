"""The write path: concurrent writes gathered into transactions, journaled; receipts anchored."""

__all__: list[str] = []

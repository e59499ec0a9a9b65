"""The event index: a SQLite cache of the contract's events, its sync, lineage queries and fsck."""

__all__: list[str] = []

"""Off-chain files and their rows: the artifact store, the row index, the receipt book."""

__all__: list[str] = []

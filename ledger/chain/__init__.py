"""The contract through web3: backends, typed client, transactions, build, deployment."""

__all__: list[str] = []

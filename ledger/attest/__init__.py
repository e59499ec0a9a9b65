"""Attestations in the formats auditors already verify: a P-256 key bound to a registrar by
the chain, in-toto Statements with SLSA Provenance in DSSE envelopes, and the auditor's check of
them against a node."""

__all__: list[str] = []

"""Attestations in the formats auditors already verify: a P-256 key bound to a registrar by
the chain, in-toto Statements with SLSA Provenance in DSSE envelopes, OpenSSF model signatures,
and the auditor's check of all of them against a node."""

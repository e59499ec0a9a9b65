"""The contract's events as bytes: their signatures and topics, and the one decoder from a raw
log (topics and data) to the :mod:`ledger.records` event types.

Why one decoder without web3: the typed client (:class:`~ledger.chain.client.LedgerClient`)
and the web3-free reader (:class:`~ledger.reading.chain_reader.LedgerReader`) must read every
event the same way, and the reader may not import web3 (``provenance verify`` starts fast
without it). ``tests/ledger/test_chain_reader.py`` checks both against the committed artifact.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from eth_abi import decode
from eth_hash.auto import keccak
from eth_utils import to_checksum_address

from ledger.records import (
    DatasetRegistered,
    LedgerEvent,
    ModelRegistered,
    PredictionsAnchored,
    RecordKind,
    RecordRevoked,
    RoleChanged,
    hash_hex,
)

__all__ = ["EVENT_SIGNATURES", "REGISTRAR_ROLE", "TOPICS", "decode_event"]

REGISTRAR_ROLE = keccak(b"REGISTRAR_ROLE")
"""The AccessControl role that may register, anchor and revoke (``keccak256("REGISTRAR_ROLE")``)."""

EVENT_SIGNATURES = {
    "DatasetRegistered": "DatasetRegistered(bytes32,address,bytes32,uint64,bytes32,bytes32,"
    "bytes32[],bytes32)",
    "ModelRegistered": "ModelRegistered(bytes32,address,bytes32[],bytes32)",
    "PredictionsAnchored": "PredictionsAnchored(bytes32,bytes32,address,uint64)",
    "RecordRevoked": "RecordRevoked(bytes32,address,uint8,string)",
    "RoleGranted": "RoleGranted(bytes32,address,address)",
    "RoleRevoked": "RoleRevoked(bytes32,address,address)",
}
TOPICS = {name: keccak(sig.encode()) for name, sig in EVENT_SIGNATURES.items()}
_NAMES = {topic: name for name, topic in TOPICS.items()}


@lru_cache(maxsize=1024)
def _address(topic: bytes) -> str:
    """Cached: a ledger's events name few accounts (its registrars), and each checksum is a
    keccak (profiled: 5% of the service's time while it indexed a burst of registrations)."""
    return to_checksum_address(topic[12:])


def decode_event(
    topics: Sequence[bytes], data: bytes, *, tx_hash: str, block_number: int, log_index: int
) -> LedgerEvent:
    """One log of the ledger contract as its typed event; a log of an event this module does
    not type is a bare :class:`LedgerEvent` (where it sits). ``eth_abi``'s errors pass through:
    a caller that reads an unknown address says what that means."""
    where = {"tx_hash": tx_hash, "block_number": block_number, "log_index": log_index}
    topics = [bytes(t) for t in topics]
    name = _NAMES.get(topics[0]) if topics else None
    if name == "DatasetRegistered":
        rows_root, row_count, schema, metadata, parents, transform = decode(
            ["bytes32", "uint64", "bytes32", "bytes32", "bytes32[]", "bytes32"], bytes(data)
        )
        return DatasetRegistered(
            **where,
            content_hash=hash_hex(topics[1]),
            registrant=_address(topics[2]),
            rows_root=hash_hex(rows_root),
            row_count=row_count,
            schema_hash=hash_hex(schema),
            metadata_hash=hash_hex(metadata),
            parents=tuple(hash_hex(p) for p in parents),
            transform_hash=hash_hex(transform),
        )
    if name == "ModelRegistered":
        datasets, metadata = decode(["bytes32[]", "bytes32"], bytes(data))
        return ModelRegistered(
            **where,
            model_hash=hash_hex(topics[1]),
            registrant=_address(topics[2]),
            datasets=tuple(hash_hex(d) for d in datasets),
            metadata_hash=hash_hex(metadata),
        )
    if name == "PredictionsAnchored":
        (count,) = decode(["uint64"], bytes(data))
        return PredictionsAnchored(
            **where,
            root=hash_hex(topics[1]),
            model_hash=hash_hex(topics[2]),
            registrant=_address(topics[3]),
            count=count,
        )
    if name == "RecordRevoked":
        kind, reason = decode(["uint8", "string"], bytes(data))
        return RecordRevoked(
            **where,
            record_hash=hash_hex(topics[1]),
            revoker=_address(topics[2]),
            kind=RecordKind(kind),
            reason=reason,
        )
    if name in ("RoleGranted", "RoleRevoked"):
        return RoleChanged(
            **where,
            role=hash_hex(topics[1]),
            account=_address(topics[2]),
            granted=name == "RoleGranted",
        )
    return LedgerEvent(**where)

"""Tamper detection: re-hash every artifact and compare the index with the chain's events.

Nothing in the store or the index is trusted: files are re-hashed against their names and
against the hashes the chain records, and the index is compared field by field with an index
rebuilt from scratch out of the contract's events. Every mismatch is reported precisely: which
file or record, what the chain says, what was found.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

from ledger.chain.client import LedgerClient
from ledger.index.base import EventIndex, IndexedDataset, IndexedModel, IndexedRecord
from ledger.index.sqlite import LedgerIndex
from ledger.records import ZERO_HASH
from ledger.storage.artifacts import ArtifactStore

__all__ = ["Finding", "fsck"]

_PAGE = 500


@dataclass(frozen=True)
class Finding:
    """One mismatch; ``kind``: ``artifact-altered``, ``artifact-missing``, ``index-mismatch``."""

    kind: str
    subject: str
    expected: str | None
    found: str | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _all(index: EventIndex) -> dict[str, IndexedRecord]:
    """Every record the index holds, by hash."""
    records: dict[str, IndexedRecord] = {}
    for listing in (index.datasets, index.models):
        offset = 0
        while True:
            page, total = listing(offset=offset, limit=_PAGE)
            records.update({r.record_hash: r for r in page})
            offset += _PAGE
            if offset >= total:
                break
    for model in [r for r in records.values() if isinstance(r, IndexedModel)]:
        records.update({b.record_hash: b for b in index.batches_of_model(model.model_hash)})
    return records


def _artifacts_of(record: IndexedRecord) -> list[tuple[str, str]]:
    """(what, digest) of every file the chain says this record has off chain."""
    if isinstance(record, IndexedDataset):
        files = [("dataset file", record.content_hash), ("dataset metadata", record.metadata_hash)]
        if record.transform_hash != ZERO_HASH:
            files.append(("transform spec", record.transform_hash))
        return files
    if isinstance(record, IndexedModel):
        return [("model file", record.model_hash), ("training metadata", record.metadata_hash)]
    return []


def _differences(name: str, expected: object, found: object) -> Iterator[tuple[str, Any, Any]]:
    """``(dotted field name, expected, found)`` for every field that differs, descending into
    the parts a record is made of (``0x….registration.block_number``), so a finding names the
    one field that was altered; a revocation present on one side only is one finding."""
    if is_dataclass(expected) and type(found) is type(expected):
        for item in fields(expected):
            yield from _differences(
                f"{name}.{item.name}", getattr(expected, item.name), getattr(found, item.name)
            )
    elif expected != found:
        yield name, expected, found


def fsck(store: ArtifactStore, index: EventIndex, client: LedgerClient) -> list[Finding]:
    """Check the store and the index against the chain; an empty list means all is well."""
    findings = [
        Finding("artifact-altered", m.path, m.expected, m.found, "file does not hash to its name")
        for m in store.check_all()
    ]
    altered = {f.expected for f in findings}
    with tempfile.TemporaryDirectory() as scratch:
        truth = LedgerIndex(Path(scratch) / "index.sqlite3")
        try:
            truth.rebuild(client)
            expected, found = _all(truth), _all(index)
        finally:
            truth.close()
    for record_hash, record in sorted(expected.items()):
        for what, digest in _artifacts_of(record):
            if digest not in store and digest not in altered:
                findings.append(
                    Finding(
                        "artifact-missing",
                        str(store.path_of(digest)),
                        digest,
                        None,
                        f"the {what} of {record_hash} is not in the store",
                    )
                )
        mine = found.get(record_hash)
        if mine is None:
            findings.append(
                Finding("index-mismatch", record_hash, "present", None, "missing from the index")
            )
            continue
        for name, value, other in _differences(record_hash, record, mine):
            findings.append(
                Finding(
                    "index-mismatch",
                    name,
                    str(value),
                    str(other),
                    "the index differs from the chain's events",
                )
            )
    for record_hash in sorted(set(found) - set(expected)):
        findings.append(Finding("index-mismatch", record_hash, None, "present", "not on chain"))
    return findings

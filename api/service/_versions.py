"""A stream version's rows, for whatever reads a dataset's rows (training, retraining).

A version's stored content is its manifest (:mod:`api.service._stream_seal`), which names the
previous version and its own chunk; its rows are its chunks' rows in order. Nothing keeps a
copy of them: :func:`version_rows_file` writes the one CSV they make (the chunks' common header
once, then every chunk's data rows) into the store's scratch area for the time a training
reads it, found from the manifests alone (each re-hashed on its read), so it needs neither
the streams' database nor anything but the artifact store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.errors import StreamVersionRows, VersionManifestBroken
from ledger.storage.artifacts import ArtifactStore

__all__ = [
    "MANIFEST_MEDIA_TYPE",
    "VersionRows",
    "is_version",
    "refuse_version",
    "version_chunks",
    "version_rows_file",
]

MANIFEST_MEDIA_TYPE = "application/vnd.provenance-ledger.stream-version+json"
_COPY = 1 << 20


@dataclass(frozen=True)
class VersionRows:
    """The rows file of a version: where it is, its SHA-256, and what the training metadata
    says about the readings in it."""

    path: Path
    content_hash: str
    facts: dict[str, Any]


def is_version(metadata: Any) -> bool:
    """Whether a dataset's metadata document is a stream version's."""
    return isinstance(metadata, dict) and metadata.get("media_type") == MANIFEST_MEDIA_TYPE


def refuse_version(metadata: Any, content_hash: str) -> None:
    """Refuse a file operation on a version (a row proof by index, a derivation): its stored
    content is its manifest. The answer names what works instead."""
    if is_version(metadata):
        stream = metadata.get("stream")
        raise StreamVersionRows(
            f"dataset {content_hash} is version {metadata.get('version')} of stream {stream}, "
            f"whose rows are its chunks' (listed by GET /v1/streams/{stream}/versions): prove a "
            f"reading with GET /v1/streams/{stream}/readings/{{id}}/proof, a row with its "
            "chunk's row proof; derive from a chunk, or train on the version directly"
        )


def version_chunks(store: ArtifactStore, version_hash: str) -> list[str]:
    """The version's chunks' content hashes, in order, read from its manifest chain."""
    chunks: list[str] = []
    current: str | None = version_hash
    expected: int | None = None
    while current is not None:
        manifest = json.loads(store.read_bytes(current))
        number = manifest.get("number")
        if manifest.get("kind") != "stream-version" or (
            expected is not None and number != expected
        ):
            raise VersionManifestBroken(f"{current} is not version {expected} of its stream")
        chunks.append(str(manifest["chunk"]))
        current, expected = manifest.get("previous"), int(number) - 1
    if expected != 0:
        raise VersionManifestBroken(f"the manifests of {version_hash} stop at version {expected}")
    chunks.reverse()
    return chunks


@contextmanager
def version_rows_file(
    store: ArtifactStore, version_hash: str, metadata: dict[str, Any]
) -> Iterator[VersionRows]:
    """The version's rows as one CSV in the store's scratch area, removed on the way out."""
    chunks = version_chunks(store, version_hash)
    out = store.stage_output()
    try:
        header: bytes | None = None
        for chunk in chunks:
            with open(store.verified_path(chunk), "rb") as handle:
                first = handle.readline()
                if header is None:
                    header = first
                    out.write(first)
                elif first != header:
                    raise VersionManifestBroken(f"chunk {chunk} has another header")
                while block := handle.read(_COPY):
                    out.write(block)
        staged = out.finish()
    except BaseException:
        out.discard()
        raise
    facts = {
        "stream": metadata.get("stream"),
        "version": version_hash,
        "version_number": metadata.get("version"),
        "readings": metadata.get("row_count"),
        "chunks": len(chunks),
        "first_received": metadata.get("first_received"),
        "last_received": metadata.get("last_received"),
        "time_unit": "unix milliseconds, as the service received the readings",
        "rows_file": staged.digest,
    }
    try:
        yield VersionRows(staged.path, staged.digest, facts)
    finally:
        staged.path.unlink(missing_ok=True)

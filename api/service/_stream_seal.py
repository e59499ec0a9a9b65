"""How a seal becomes records: a chunk (a CSV dataset like any upload) and a version (a dataset
whose content is a small manifest and whose parents are the previous version and the chunk).

**What a version is.** Version ``k`` of a stream is a dataset record with

* ``parents`` = (version ``k-1``, chunk ``k``), or (chunk 1) for the first, and
  ``transform_hash`` = the hash of :data:`APPEND_SPEC`, so lineage, revocation and taint treat it
  as data derived from both: revoking a chunk taints every later version and the models on them;
* ``rows_root`` = the StandardMerkleTree root over one leaf per chunk,
  ``(position, chunk content hash, chunk rows root, first row, row count)``
  (:data:`~api.streaming.rows.CHUNK_LEAF_ENCODING`); a reading's proof is its row in its
  chunk's rows root, then its chunk's leaf in the version's root;
* ``row_count`` = the readings of all its chunks; ``schema_hash`` = the stream's file schema;
* content = the canonical JSON manifest (stream, number, previous version, chunk, readings,
  columns, root), stored under its SHA-256 like any file. The version's rows are its chunks'
  rows in order: nothing is copied, so storage grows with the readings, not with the versions.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from api.service._core import Written
from api.service._versions import MANIFEST_MEDIA_TYPE
from api.service.datasets import Datasets
from api.streaming.rows import (
    CHUNK_LEAF_ENCODING,
    chunk_csv_stored,
    chunk_csv_text,
    file_columns,
    stream_columns,
    stream_schema_hash,
)
from api.streaming.store import ChunkRow, StreamRow, StreamStore
from ledger.formats.merkle import StandardMerkleTree
from ledger.records import DatasetInput
from ledger.storage.artifacts import ArtifactStore
from ml.hashing import canonical_json, to_hex

__all__ = [
    "APPEND_SPEC",
    "SealedChunk",
    "chunk_file",
    "chunk_leaves",
    "chunk_tree",
    "register_seal",
]

APPEND_SPEC = {
    "transform": "stream-append",
    "description": "the previous version's rows, then the chunk's rows, in order",
    "chunk_leaf_encoding": list(CHUNK_LEAF_ENCODING),
}


@dataclass(frozen=True)
class SealedChunk:
    content_hash: str
    rows_root: str
    version_hash: str
    version_root: str


# Chunk files' sizes by content hash, for a version's size. A hash names the same bytes wherever
# they are stored, so a size read once holds: a seal read every earlier chunk's file size (a
# system call each, and a path whose name pathlib interns), a cost that grew with the stream.
_SIZES: dict[str, int] = {}


def _file_size(store: ArtifactStore, digest: str) -> int:
    size = _SIZES.get(digest)
    if size is None:
        size = _SIZES[digest] = store.path_of(digest).stat().st_size
    return size


def chunk_file(store: StreamStore, stream: StreamRow, number: int) -> bytes:
    """Chunk ``number``'s file: its readings as the CSV :func:`chunk_csv_stored` makes (by
    SQLite's text of them where the stream has no string column)."""
    columns = stream_columns(stream)
    if not any(c.type == "string" for c in columns):
        text = store.chunk_text(stream.name, number)
        if text is not None:
            return chunk_csv_text(columns, text)
    return chunk_csv_stored(columns, store.chunk_rows(stream.name, number))


def chunk_leaves(chunks: Sequence[ChunkRow]) -> list[tuple[int, str, str, int, int]]:
    """The leaves of a version made of ``chunks`` (sealed, in order)."""
    return [
        (i, str(c.content_hash), str(c.rows_root), c.first_row, c.count)
        for i, c in enumerate(chunks)
    ]


def chunk_tree(leaves: Sequence[tuple[int, str, str, int, int]]) -> StandardMerkleTree:
    return StandardMerkleTree.of(leaves, CHUNK_LEAF_ENCODING)


def register_seal(
    datasets: Datasets,
    store: ArtifactStore,
    stream: StreamRow,
    chunk: ChunkRow,
    data: bytes,
    earlier: Sequence[ChunkRow],
    *,
    early: bool = False,
) -> SealedChunk:
    """Register chunk ``chunk`` (its file, :func:`chunk_file`) and the version it makes after
    ``earlier`` (the stream's sealed chunks before it, in order). Both registrations answer the
    existing record when redone after a crash: the same readings give the same bytes. Both go
    in one round of writes: the version names the chunk as a parent, which the contract finds
    registered just before it in the same call. ``early``: each is answered once in a block
    (``wait=included``), not once final."""
    if len(earlier) != chunk.number - 1:
        raise RuntimeError(f"chunk {chunk.number} follows {len(earlier)} sealed chunks")
    columns = stream_columns(stream)
    chunk_item = datasets.prepare_upload(
        io.BytesIO(data),
        name=f"{stream.name} chunk {chunk.number}",
        description=f"readings {chunk.first_row}..{chunk.readings_total - 1} of stream "
        f"{stream.name}",
        file_name=f"{stream.name}-{chunk.number:06d}.csv",
    )
    if isinstance(chunk_item, Written):  # registered before a crash
        chunk_hash, chunk_root = chunk_item.view.content_hash, chunk_item.view.rows_root
    else:
        chunk_hash, chunk_root = chunk_item.content_hash, chunk_item.rows_root
    leaves = chunk_leaves(earlier)
    leaves.append((len(earlier), chunk_hash, chunk_root, chunk.first_row, chunk.count))
    root = to_hex(chunk_tree(leaves).root)
    previous = earlier[-1].version_hash if earlier else None
    file_columns_json = [c.to_json() for c in file_columns(columns)]
    manifest = {
        "kind": "stream-version",
        "stream": stream.name,
        "number": chunk.number,
        "previous": previous,
        "chunk": chunk_hash,
        "readings": chunk.readings_total,
        "columns": file_columns_json,
        "chunks_root": root,
        "chunk_leaf_encoding": list(CHUNK_LEAF_ENCODING),
    }
    version_hash = store.put_bytes(canonical_json(manifest))
    first_received = earlier[0].first_received if earlier else chunk.first_received
    metadata = {
        "kind": "dataset",
        "media_type": MANIFEST_MEDIA_TYPE,
        "name": f"{stream.name} v{chunk.number}",
        "description": f"stream {stream.name}, version {chunk.number}: "
        f"{chunk.readings_total} readings in {chunk.number} chunk(s)",
        "columns": file_columns_json,
        "row_count": chunk.readings_total,
        "size": sum(_file_size(store, h) for _, h, *_ in leaves),
        "stream": stream.name,
        "version": chunk.number,
        "first_received": first_received,
        "last_received": chunk.last_received,
    }
    item = DatasetInput(
        version_hash,
        rows_root=root,
        row_count=chunk.readings_total,
        schema_hash=stream_schema_hash(columns),
        metadata_hash=store.put_bytes(canonical_json(metadata)),
        parents=(previous, chunk_hash) if previous else (chunk_hash,),
        transform_hash=store.put_bytes(canonical_json(APPEND_SPEC)),
    )
    # The chunk and the version in one round of writes (one transaction, one block): half the
    # chain's work of a seal (issue 27: the two writes were half of the sealer's time)
    together = [item] if isinstance(chunk_item, Written) else [chunk_item, item]
    *chunk_answer, version_answer = datasets.register_inputs(together, early=early)
    if chunk_answer and isinstance(chunk_answer[0], Exception):
        raise chunk_answer[0]
    if isinstance(version_answer, Exception):
        # Where the round was split over two transactions, the version may have been checked
        # before the chunk was in a block: alone now, it is answered on its own.
        datasets.register_input(item, early=early)
    return SealedChunk(chunk_hash, chunk_root, version_hash, root)

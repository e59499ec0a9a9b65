"""A stream reading's proof: its row in its chunk, and its chunk's place in a version.

The row part is the dataset row proof every dataset has; the chunk part is a StandardMerkleTree
proof over the version's chunk leaves (:mod:`api.service._stream_seal`). Both roots are read
from the chain's records (through the index) and compared before anything is answered, so a
store that was altered answers an error, never a proof that would not verify.
"""

from __future__ import annotations

from api.errors import ReadingNotSealed, RowsRootMismatch, UnknownStreamReading
from api.schemas.streams import ReadingProofPublic
from api.service._stream_seal import chunk_leaves, chunk_tree
from api.service.datasets import Datasets
from api.streaming.rows import CHUNK_LEAF_ENCODING
from api.streaming.store import StreamStore
from ml.hashing import to_hex

__all__ = ["reading_proof"]


def reading_proof(
    store: StreamStore, datasets: Datasets, name: str, reading_id: str, version: str | None
) -> ReadingProofPublic:
    """A sealed reading's row proof in its chunk (:meth:`Datasets.row_proof`, checked against
    the chunk's on-chain rows root) and its chunk's place in ``version`` (the latest when
    None), whose tree is rebuilt from the stream's chunks and checked against the version's
    on-chain rows root before it is answered."""
    found = store.reading(name, reading_id)
    if found is None:
        raise UnknownStreamReading(f"stream {name} has no reading {reading_id!r}")
    received_at, number, position = found
    if number is None or position is None:
        raise ReadingNotSealed(f"reading {reading_id!r} is stored but not sealed yet")
    if version is None:
        latest, _ = store.versions(name, offset=0, limit=1)
        target = latest[0] if latest else None
    else:
        target = store.by_version(version.lower())
        if target is not None and target.stream != name:
            target = None
        if target is None:
            raise UnknownStreamReading(f"stream {name} has no version {version}")
    if target is None or target.state != "sealed" or target.number < number:
        raise ReadingNotSealed(
            f"reading {reading_id!r} is in chunk {number}, not in that version"
            if version is not None
            else f"reading {reading_id!r} is being sealed; ask again shortly"
        )
    chunks = store.chunks(name, upto=target.number)
    chunk = chunks[number - 1]
    row = datasets.row_proof(str(chunk.content_hash), position)
    leaves = chunk_leaves(chunks)
    tree = chunk_tree(leaves)
    on_chain = datasets.indexed(str(target.version_hash)).rows_root
    if on_chain != to_hex(tree.root):
        raise RowsRootMismatch(
            f"version {target.version_hash}'s chunks give root {to_hex(tree.root)}, the "
            f"chain says {on_chain}"
        )
    return ReadingProofPublic(
        stream=name,
        id=reading_id,
        received_at=received_at,
        version=str(target.version_hash),
        chunk=str(chunk.content_hash),
        index=position,
        row=row.row,
        row_digest=row.row_digest,
        leaf=row.leaf,
        proof=row.proof,
        root=row.root,
        leaf_encoding=row.leaf_encoding,
        chunk_leaf=list(leaves[number - 1]),
        chunk_leaf_hash=to_hex(tree.leaf_hash_at(number - 1)),
        chunk_proof=[to_hex(p) for p in tree.proof(number - 1)],
        version_root=to_hex(tree.root),
        chunk_leaf_encoding=list(CHUNK_LEAF_ENCODING),
    )

"""A dataset's files and row index without a chain: what registration and row proofs are made
of (scan and index a file, store both before any transaction names them, open or rebuild a row
index, prove a row).

Module functions apart from :mod:`api.service.datasets`, so that
``tests/test_dataset_pipeline.py`` runs these very steps at real size, and the flows that use
them stay under our file-size bound.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from api.schemas import RowProofPublic
from ledger.formats.rows import ROW_LEAF_ENCODING
from ledger.storage.artifacts import ArtifactStore, Staged
from ledger.storage.row_index import RowIndex, RowIndexBuilder, RowIndexCorrupt, RowIndexInfo
from ml.datasets import Column, Limits
from ml.hashing import canonical_json, to_hex
from ml.scanning import Scan, read_rows, scan_file

__all__ = ["commit_dataset", "index_file", "open_row_index", "prove_row"]


def index_file(store: ArtifactStore, path: Path, limits: Limits) -> tuple[Scan, RowIndexInfo]:
    """Both scan passes over a file, feeding its row index (built in the store's scratch area,
    not yet committed)."""
    built = store.scratch_path(".rows")
    with RowIndexBuilder(built) as rows:
        scan = scan_file(path, limits, digests=rows.add)
        info = rows.finish(
            content=scan.content_hash,
            locators=scan.locators,
            locator_stride=scan.locator_stride,
            extra=canonical_json([c.to_json() for c in scan.columns]),
        )
    return scan, info


def commit_dataset(store: ArtifactStore, staged: Staged, rows: Path) -> None:
    """Store a staged dataset file and its built row index, before any transaction names it.

    A store that fails (an object store away) keeps neither: the staged file is the store's to
    remove, the built row index is removed here, so a failed upload leaves nothing behind."""
    try:
        store.commit(staged)
        store.commit_rows(staged.digest, rows)
    except BaseException:
        rows.unlink(missing_ok=True)
        raise


def open_row_index(
    store: ArtifactStore,
    content_hash: str,
    limits: Limits,
    hold: Callable[[], AbstractContextManager[Any]],
) -> RowIndex:
    """The dataset's row index, built from its re-hashed file when it has none yet (every
    dataset registered before row indexes existed) or when its index is damaged; ``hold``
    keeps two requests from building it at once."""
    try:
        return RowIndex(store.rows_path(content_hash))
    except FileNotFoundError:
        damaged = False
    except RowIndexCorrupt:
        damaged = True
    with hold():
        if damaged:
            try:
                return RowIndex(store.rows_path(content_hash))  # repaired meanwhile?
            except (FileNotFoundError, RowIndexCorrupt):
                store.verified_path(content_hash)  # the file itself altered? that raises
                store.discard_rows(content_hash)  # no: the index was; rebuild it
        if not store.has_rows(content_hash):
            _, rows = index_file(store, store.verified_path(content_hash), limits)
            store.commit_rows(content_hash, rows.path)
    return RowIndex(store.rows_path(content_hash))


def prove_row(
    store: ArtifactStore, rows: RowIndex, content_hash: str, index: int
) -> RowProofPublic:
    """Row ``index`` and its proof against ``rows``' root: a few reads of the index and of the
    stored file, no tree built; the proof is checked against the root before it is returned."""
    columns = [Column(c["name"], c["type"]) for c in json.loads(rows.extra)]
    offset, skip = rows.locator(index)
    [(values, digest)] = read_rows(
        store.path_of(content_hash), columns, offset=offset, skip=skip, count=1
    )
    proof = rows.proof(index, digest)
    return RowProofPublic(
        dataset=content_hash,
        index=index,
        row=list(values),
        row_digest=to_hex(digest),
        leaf=to_hex(rows.leaf_hash(index, digest)),
        proof=[to_hex(p) for p in proof],
        root=to_hex(rows.root),
        leaf_encoding=list(ROW_LEAF_ENCODING),
    )

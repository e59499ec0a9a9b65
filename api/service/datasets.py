"""Datasets: register an upload (flow 1), derive a cleaned one (flow 2), read, prove a row.

Each write follows the same order: validate everything first (bad input changes nothing), store
the artifacts (content-addressed, so a retry is harmless), send the transaction, then bring the
index up to date from the chain's events, which stay the source of truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

from api.errors import DerivationUnchanged, RowsRootMismatch, UnknownRow
from api.schemas import DatasetPublic, DatasetsPublic, RowProofPublic
from api.service._core import Core, Written
from api.service.views import dataset_view
from ledger.errors import AlreadyRegistered, RecordRevoked, UnknownDataset
from ledger.index import IndexedDataset
from ledger.records import ZERO_HASH
from ledger.rows import ROW_LEAF_ENCODING, row_tree
from ml.datasets import Dataset, load_dataset, parse_dataset
from ml.errors import TooLarge
from ml.hashing import canonical_json, to_hex
from ml.transforms import TransformSpec, derive

__all__ = ["Datasets"]


class Datasets:
    """Registered datasets, their files and their rows."""

    def __init__(self, core: Core) -> None:
        self._core = core

    # -- reads ---------------------------------------------------------------------------------

    def indexed(self, content_hash: str) -> IndexedDataset:
        """The indexed record; raises :class:`UnknownDataset`."""
        indexed = self._core.index.dataset(content_hash)
        if indexed is None:
            raise UnknownDataset(f"no dataset is registered under {content_hash}")
        return indexed

    def live(self, content_hash: str) -> IndexedDataset:
        """The indexed record, refused when revoked: nothing new is built on revoked data."""
        indexed = self.indexed(content_hash)
        if indexed.revoked:
            raise RecordRevoked(f"dataset {content_hash} is revoked")
        return indexed

    def get(self, content_hash: str) -> DatasetPublic:
        return dataset_view(self._core, self.indexed(content_hash))

    def list(self, *, offset: int, limit: int) -> DatasetsPublic:
        items, count = self._core.index.datasets(offset=offset, limit=limit)
        return DatasetsPublic(data=[dataset_view(self._core, d) for d in items], count=count)

    def content_path(self, content_hash: str) -> Path:
        """The stored file, re-hashed first."""
        return self._core.store.verified_path(self.indexed(content_hash).content_hash)

    def load(self, content_hash: str) -> Dataset:
        """The parsed dataset from the store, re-hashed on the way in."""
        core = self._core
        return core.datasets_cache.get_or_make(
            content_hash,
            lambda: parse_dataset(
                core.store.read_bytes(content_hash), limits=core.settings.dataset_limits()
            ),
        )

    def row_proof(self, content_hash: str, index: int) -> RowProofPublic:
        """Row ``index`` with its inclusion proof against the dataset's on-chain rows root."""
        indexed = self.indexed(content_hash)
        if not 0 <= index < indexed.row_count:
            raise UnknownRow(f"row {index} is out of range 0..{indexed.row_count - 1}")
        dataset = self.load(indexed.content_hash)
        tree = self._core.trees_cache.get_or_make(
            indexed.content_hash, lambda: row_tree(dataset.row_digests())
        )
        root = to_hex(tree.root)
        if root != indexed.rows_root:
            raise RowsRootMismatch(
                f"the stored file's rows root {root} differs from the chain's {indexed.rows_root}"
            )
        return RowProofPublic(
            dataset=indexed.content_hash,
            index=index,
            row=list(dataset.rows[index]),
            row_digest=to_hex(dataset.row_digests()[index]),
            leaf=to_hex(tree.leaf_hash_at(index)),
            proof=[to_hex(p) for p in tree.proof(index)],
            root=root,
            leaf_encoding=list(ROW_LEAF_ENCODING),
        )

    # -- writes --------------------------------------------------------------------------------

    def register(
        self, stream: BinaryIO, *, name: str | None = None, description: str | None = None
    ) -> Written[DatasetPublic]:
        """Register an uploaded CSV (flow 1): validate, hash, store, record, index."""
        settings = self._core.settings
        settings.check_chars("name", name, "max_name_chars")
        settings.check_chars("description", description, "max_description_chars")
        store = self._core.store
        try:
            staged = store.stage(stream, max_bytes=settings.max_upload_bytes)
        except ValueError:
            raise TooLarge(limit="max_upload_bytes", maximum=settings.max_upload_bytes) from None
        try:
            existing = self._core.index.dataset(staged.digest)
            if existing is None:
                dataset = load_dataset(staged.path, settings.dataset_limits())
        except BaseException:
            store.discard(staged)
            raise
        if existing is not None:  # the same bytes again: nothing to store, nothing to send
            store.discard(staged)
            return Written(dataset_view(self._core, existing), created=False)
        store.commit(staged)
        return self._register(dataset, name=name, description=description)

    def derive(self, parent_hash: str, steps: list[dict[str, Any]]) -> Written[DatasetPublic]:
        """Clean a registered dataset with a transform spec (flow 2) and register the result."""
        settings = self._core.settings
        spec = TransformSpec.from_json({"steps": steps}, max_steps=settings.max_transform_steps)
        parent = self.live(parent_hash)
        derivation = derive(self.load(parent.content_hash), spec, limits=settings.dataset_limits())
        new_hash = to_hex(derivation.dataset.content_hash)
        if new_hash == parent.content_hash:
            raise DerivationUnchanged("the steps change nothing: the result is the parent")
        if (existing := self._core.index.dataset(new_hash)) is not None:
            if existing.parents != (parent.content_hash,) or existing.transform_hash != to_hex(
                spec.hash
            ):
                raise AlreadyRegistered(
                    f"the result's bytes are dataset {new_hash}, registered with another "
                    "lineage; a dataset is registered once, so nothing was recorded"
                )
            return Written(dataset_view(self._core, existing), created=False)
        self._core.store.put_bytes(derivation.data)
        self._core.store.put_bytes(spec.canonical_bytes)
        return self._register(
            derivation.dataset,
            parents=[parent.content_hash],
            transform_hash=to_hex(spec.hash),
            name=None,
            description=f"derived from {parent.content_hash}",
        )

    def _register(
        self,
        dataset: Dataset,
        *,
        name: str | None,
        description: str | None,
        parents: list[str] | None = None,
        transform_hash: str = ZERO_HASH,
    ) -> Written[DatasetPublic]:
        core = self._core
        content_hash = to_hex(dataset.content_hash)
        metadata = {
            "kind": "dataset",
            "media_type": "text/csv",
            "name": name,
            "description": description,
            "columns": [c.to_json() for c in dataset.columns],
            "row_count": dataset.row_count,
            "size": dataset.size,
        }
        with core.locks.hold(content_hash):
            if (existing := core.index.dataset(content_hash)) is not None:
                return Written(dataset_view(core, existing), created=False)  # won by another
            metadata_hash = core.store.put_bytes(canonical_json(metadata))
            try:
                core.client.register_dataset(
                    content_hash,
                    rows_root=to_hex(row_tree(dataset.row_digests()).root),
                    row_count=dataset.row_count,
                    schema_hash=dataset.schema_hash,
                    metadata_hash=metadata_hash,
                    parents=parents or [],
                    transform_hash=transform_hash,
                )
                created = True
            except AlreadyRegistered:
                created = False  # registered meanwhile (another service, or an index lagging)
            core.sync()
        indexed = core.index.dataset(content_hash)
        if indexed is None:
            raise AlreadyRegistered(f"{content_hash} is registered as another kind")
        return Written(dataset_view(core, indexed), created=created)

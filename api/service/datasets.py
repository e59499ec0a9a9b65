"""Datasets: register an upload (flow 1) or many at once, derive a cleaned one (flow 2), read,
prove a row.

Each write follows the same order: validate everything first (bad input changes nothing), store
the artifacts (content-addressed, so a retry is harmless), then hand the record to the write
pipeline, which gathers it with the writes of other requests and answers once it is on chain;
the answer is built from the node's own receipt, and the index has caught up with it (one sync
for every request of a round) before the request is answered.
A file already registered is answered from the index (or the pipeline's memory of what it just
wrote) with no transaction at all.

Why it runs past 400 lines: registration, batches, derivation and stream versions share one
order of steps (prepare, store, write) and its helpers; the chain-free steps on files and row
indexes are in :mod:`api.service.dataset_rows`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from api.errors import DerivationUnchanged, LimitExceeded, RowsRootMismatch, UnknownRow
from api.schemas import DatasetPublic, DatasetsPublic, RowProofPublic
from api.schemas.records import DatasetAcceptedPublic
from api.service._core import Core, Written
from api.service._included import indexed_dataset
from api.service._versions import refuse_version
from api.service.dataset_rows import commit_dataset, index_file, open_row_index, prove_row
from api.service.views import dataset_view
from ledger.errors import AlreadyRegistered, LedgerError, RecordIsRevoked, UnknownDataset
from ledger.index.sqlite import IndexedDataset
from ledger.records import ZERO_HASH, DatasetInput
from ledger.storage.artifacts import (
    ArtifactMissing,
    StreamTooLarge,
)
from ledger.storage.row_index import (
    RowIndex,
    RowIndexCorrupt,
    RowIndexInfo,
    RowNotInIndex,
)
from ledger.writes.pipeline import Included
from ml.datasets import Column
from ml.errors import MlError, TooLarge
from ml.hashing import canonical_json, to_hex
from ml.scanning import Scan, read_schema
from ml.training_memory import check_training_memory
from ml.training_pool import DatasetFile
from ml.transforms import TransformSpec, derive_file

__all__ = [
    "BatchEntry",
    "Datasets",
    "commit_dataset",
    "index_file",
    "open_row_index",
    "prove_row",
]


@dataclass(frozen=True)
class BatchEntry:
    """One file of a batch upload: registered now or before (``written``), or refused with its
    own domain error (``error``), which changed nothing."""

    file: str
    written: Written[DatasetPublic] | None = None
    error: Exception | None = None
    accepted: str | None = None  # its content hash: durably queued (wait=accepted)


class Datasets:
    """Registered datasets, their files and their rows."""

    def __init__(self, core: Core) -> None:
        self._core = core

    # -- reads ---------------------------------------------------------------------------------

    def indexed(self, content_hash: str) -> IndexedDataset:
        """The indexed record; raises :class:`UnknownDataset`."""
        self._core.catch_up()
        indexed = self._core.dataset(content_hash)
        if indexed is None:
            exc = UnknownDataset(f"no dataset is registered under {content_hash}")
            raise self._core.not_found(exc, content_hash)
        return indexed

    def live(self, content_hash: str) -> IndexedDataset:
        """The indexed record, refused when revoked: nothing new is built on revoked data."""
        indexed = self.indexed(content_hash)
        if indexed.revoked:
            raise RecordIsRevoked(f"dataset {content_hash} is revoked")
        return indexed

    def get(self, content_hash: str) -> DatasetPublic:
        return dataset_view(self._core, self.indexed(content_hash))

    def list(self, *, offset: int, limit: int) -> DatasetsPublic:
        self._core.catch_up()
        items, count = self._core.index.datasets(offset=offset, limit=limit)
        return DatasetsPublic(data=[dataset_view(self._core, d) for d in items], count=count)

    def content_path(self, content_hash: str) -> Path:
        """The stored file, re-hashed first."""
        return self._core.store.verified_path(self.indexed(content_hash).content_hash)

    def file(self, content_hash: str) -> DatasetFile:
        """The stored file, for a training process to read: that process re-hashes it while
        parsing, so it is hashed on every read without being read twice here."""
        path = self._core.store.path_of(content_hash)
        if not path.exists():
            raise ArtifactMissing(f"no artifact {content_hash} in the store", path=str(path))
        return DatasetFile(path, content_hash, self._core.settings.dataset_limits())

    def check_memory(self, content_hash: str, features: Sequence[str] | None) -> None:
        """Refuse to train on a dataset whose loading would pass ``max_memory_bytes`` (413),
        estimated from its registered schema before anything is read."""
        core, indexed = self._core, self.indexed(content_hash)
        meta = core.json_artifact(indexed.metadata_hash) or {}
        try:
            columns = [Column(c["name"], c["type"]) for c in meta["columns"]]
            size = int(meta["size"])
        except (KeyError, TypeError, ValueError):
            schema = read_schema(
                core.store.verified_path(content_hash), core.settings.dataset_limits()
            )
            columns, size = list(schema.columns), schema.size
        check_training_memory(
            columns,
            indexed.row_count,
            size,
            features=features,
            max_memory_bytes=core.settings.max_memory_bytes,
        )

    def row_proof(self, content_hash: str, index: int) -> RowProofPublic:
        """Row ``index`` with its inclusion proof against the dataset's on-chain rows root, read
        from the on-disk row index (O(log n) of it), rebuilt from the file when damaged."""
        indexed = self.indexed(content_hash)
        refuse_version(self._core.json_artifact(indexed.metadata_hash), indexed.content_hash)
        if not 0 <= index < indexed.row_count:
            raise UnknownRow(f"row {index} is out of range 0..{indexed.row_count - 1}")
        try:
            return self._proof(indexed, index)
        except (RowIndexCorrupt, RowNotInIndex):
            self._core.store.verified_path(indexed.content_hash)  # the file itself altered?
            self._core.store.discard_rows(indexed.content_hash)  # no: the index was; rebuild it
            return self._proof(indexed, index)

    def _proof(self, indexed: IndexedDataset, index: int) -> RowProofPublic:
        with self._row_index(indexed.content_hash) as rows:
            root = to_hex(rows.root)
            if root != indexed.rows_root:
                raise RowsRootMismatch(
                    f"the stored file's rows root {root} differs from the chain's "
                    f"{indexed.rows_root}"
                )
            return prove_row(self._core.store, rows, indexed.content_hash, index)

    def _row_index(self, content_hash: str) -> RowIndex:
        """The dataset's row index (see :func:`open_row_index`), repaired under its lock."""
        core = self._core
        return open_row_index(
            core.store,
            content_hash,
            core.settings.dataset_limits(),
            lambda: core.locks.hold(f"rows:{content_hash}"),
        )

    def _index(self, path: Path) -> tuple[Scan, RowIndexInfo]:
        return index_file(self._core.store, path, self._core.settings.dataset_limits())

    # -- writes --------------------------------------------------------------------------------

    def register(
        self,
        stream: BinaryIO,
        *,
        name: str | None = None,
        description: str | None = None,
        file_name: str | None = None,
        wait: str = "final",
    ) -> Written[DatasetPublic] | DatasetAcceptedPublic:
        """Register an uploaded CSV (flow 1): validate, hash, store, record. ``file_name``, the
        uploaded file's name, is kept in the metadata document (shown and searched).

        ``wait``: ``final`` (once the record is final), ``included`` (once it is in a block,
        which a reorganisation may still take away: the view says ``chain_status``), or
        ``accepted`` (once the record is durably queued, its file stored and its fields in the
        write journal, on RPC nodes; the embedded chain writes a block inside the send, so
        there it is answered final as usual)."""
        settings = self._core.settings
        settings.check_chars("name", name, "max_name_chars")
        settings.check_chars("description", description, "max_description_chars")
        settings.check_chars("file_name", file_name, "max_name_chars")
        prepared = self._prepare(stream, name=name, description=description, file_name=file_name)
        if isinstance(prepared, Written):
            return prepared
        if self._accepts(wait):
            return self._accept(prepared)
        written = self._write([prepared], early=wait == "included")[0]
        if isinstance(written, Exception):
            raise written
        return written

    def _accepts(self, wait: str) -> bool:
        """Answer on acceptance? Only where writes are journaled (RPC chains)."""
        return wait == "accepted" and self._core.writes.journal is not None

    def _accept(self, item: DatasetInput) -> DatasetAcceptedPublic:
        core = self._core
        [accepted] = core.writes.accept_many([item])
        if item.parents:  # a derivation: its OpenLineage run is told once it is on chain
            core.events.when_final(
                accepted, lambda i: core.events.derived(dataset_view(core, indexed_dataset(i)))
            )
        digest = item.content_hash  # our own SHA-256, 0x-hex: built without re-validation
        return DatasetAcceptedPublic.model_construct(
            content_hash=digest, url=f"/v1/datasets/{digest}"
        )

    def register_many(
        self, files: Sequence[tuple[str, BinaryIO]], *, wait: str = "final"
    ) -> list[BatchEntry]:
        """Register several uploaded CSVs in as few transactions as a block allows; each file
        is named after its file name. A file registered before is answered as such with no
        transaction; a file refused (too large, malformed, a name too long) gets its own error
        and changes nothing, and never keeps the others from being registered. ``wait`` as
        for :meth:`register`: accepted files are journaled together, in one commit."""
        settings = self._core.settings
        if len(files) > settings.max_batch_files:
            raise LimitExceeded(
                f"{len(files)} files in one batch, at most {settings.max_batch_files}",
                limit="max_batch_files",
            )
        entries: list[BatchEntry | None] = []
        inputs: list[DatasetInput] = []
        waiting: list[int] = []  # entries[i] for inputs[k] is waiting[k]
        for filename, stream in files:
            try:
                settings.check_chars("name", filename, "max_name_chars")
                prepared = self._prepare(
                    stream, name=filename or None, description=None, file_name=filename or None
                )
            except (MlError, LedgerError) as exc:
                entries.append(BatchEntry(filename, error=exc))
                continue
            if isinstance(prepared, Written):
                entries.append(BatchEntry(filename, written=prepared))
            else:
                waiting.append(len(entries))
                entries.append(None)
                inputs.append(prepared)
        if self._accepts(wait) and inputs:
            self._core.writes.accept_many(inputs)
            for position, item in zip(waiting, inputs, strict=True):
                entries[position] = BatchEntry(files[position][0], accepted=item.content_hash)
            return [entry for entry in entries if entry is not None]
        outcomes = self._write(inputs, early=wait == "included")
        for position, written in zip(waiting, outcomes, strict=True):
            filename = files[position][0]
            entries[position] = (
                BatchEntry(filename, error=written)
                if isinstance(written, Exception)
                else BatchEntry(filename, written=written)
            )
        return [entry for entry in entries if entry is not None]

    def derive(
        self, parent_hash: str, steps: list[dict[str, Any]], *, wait: str = "final"
    ) -> Written[DatasetPublic] | DatasetAcceptedPublic:
        """Clean a registered dataset with a transform spec (flow 2) and register the result
        (``wait`` as for :meth:`register`; the OpenLineage run is told once the record is on
        chain: at the answer, or later for ``accepted``)."""
        settings = self._core.settings
        spec = TransformSpec.from_json({"steps": steps}, max_steps=settings.max_transform_steps)
        parent = self.live(parent_hash)
        refuse_version(self._core.json_artifact(parent.metadata_hash), parent.content_hash)
        store = self._core.store
        with store.stage_output() as out:
            derive_file(
                store.verified_path(parent.content_hash),
                spec,
                out,
                limits=settings.dataset_limits(),
                max_memory_bytes=settings.max_memory_bytes,
            )
            staged = out.finish()
        lineage = ((parent.content_hash,), to_hex(spec.hash))
        try:
            if staged.digest == parent.content_hash:
                raise DerivationUnchanged("the steps change nothing: the result is the parent")
            if (existing := self._core.dataset(staged.digest)) is not None:
                store.discard(staged)
                written = Written(dataset_view(self._core, existing), False)
                return self._same_lineage(written, lineage)
            scan, rows = self._index(staged.path)
        except BaseException:
            store.discard(staged)
            raise
        commit_dataset(store, staged, rows.path)
        store.put_bytes(spec.canonical_bytes)
        item = self._input(
            scan,
            rows_root=to_hex(rows.root),
            parents=[parent.content_hash],
            transform_hash=to_hex(spec.hash),
            name=None,
            description=f"derived from {parent.content_hash}",
        )
        if self._accepts(wait):
            return self._accept(item)
        written = self._write([item], early=wait == "included")[0]
        if isinstance(written, Exception):
            raise written
        if written.created:
            self._core.events.derived(written.view)
        return self._same_lineage(written, lineage)

    def _same_lineage(
        self, written: Written[DatasetPublic], lineage: tuple[tuple[str, ...], str]
    ) -> Written[DatasetPublic]:
        """A derivation whose bytes are registered already is answered only if that record has
        this very lineage (registered before, or by an identical request a moment ago)."""
        view = written.view
        if written.created or (tuple(view.parents), view.transform_hash) == lineage:
            return written
        raise AlreadyRegistered(
            f"the result's bytes are dataset {view.content_hash}, registered with another "
            "lineage; a dataset is registered once, so nothing was recorded"
        )

    def _prepare(
        self,
        stream: BinaryIO,
        *,
        name: str | None,
        description: str | None,
        file_name: str | None = None,
    ) -> Written[DatasetPublic] | DatasetInput:
        """Stage, hash, check and store one upload: the answer if its bytes are registered
        already, else the record to write. Nothing is kept of a file that is refused."""
        core = self._core
        settings = core.settings
        store = core.store
        try:
            staged = store.stage(stream, max_bytes=settings.max_upload_bytes)
        except StreamTooLarge:
            raise TooLarge(limit="max_upload_bytes", maximum=settings.max_upload_bytes) from None
        try:
            existing = core.dataset(staged.digest)
            if existing is None:
                scan, rows = self._index(staged.path)
        except BaseException:
            store.discard(staged)
            raise
        if existing is not None and existing.revoked:  # answered with its revocation
            store.discard(staged)
            revocation = existing.revocation
            raise RecordIsRevoked(
                f"this file is dataset {existing.content_hash}, revoked in block "
                f"{revocation.block_number if revocation else '?'}: "
                f"{revocation.reason if revocation else ''}; a revoked dataset stays revoked "
                "(nothing was recorded)"
            )
        if existing is not None:  # the same bytes again: nothing to store, nothing to send
            store.discard(staged)
            return Written(dataset_view(core, existing), created=False)
        commit_dataset(store, staged, rows.path)
        return self._input(
            scan,
            rows_root=to_hex(rows.root),
            name=name,
            description=description,
            file_name=file_name,
        )

    def _input(
        self,
        dataset: Scan,
        *,
        rows_root: str,
        name: str | None,
        description: str | None,
        parents: list[str] | None = None,
        transform_hash: str = ZERO_HASH,
        file_name: str | None = None,
    ) -> DatasetInput:
        """The record of a dataset, with its metadata document stored under its hash."""
        metadata = {
            "kind": "dataset",
            "media_type": "text/csv",
            "name": name,
            "description": description,
            "columns": [c.to_json() for c in dataset.columns],
            "row_count": dataset.row_count,
            "size": dataset.size,
        }
        if file_name:  # an upload's own name (documents before this have none)
            metadata["file_name"] = file_name
        return DatasetInput(
            to_hex(dataset.content_hash),
            rows_root=rows_root,
            row_count=dataset.row_count,
            schema_hash=dataset.schema_hash,
            metadata_hash=self._core.store.put_bytes(canonical_json(metadata)),
            parents=tuple(parents or ()),
            transform_hash=transform_hash,
        )

    def prepare_upload(
        self, stream: BinaryIO, *, name: str, description: str, file_name: str
    ) -> Written[DatasetPublic] | DatasetInput:
        """:meth:`register` without the write: the file checked, hashed and stored, answered
        as it stands when registered already, else the record to write (with others, by
        :meth:`register_inputs`)."""
        return self._prepare(stream, name=name, description=description, file_name=file_name)

    def register_inputs(
        self, items: Sequence[DatasetInput], *, early: bool = False
    ) -> list[Written[DatasetPublic] | LedgerError]:
        """Register records whose files the caller stored, in one round of writes (one
        transaction when a block holds them: a stream's chunk and the version naming it as a
        parent, which the contract finds registered just before it in the same call); each is
        answered on its own, from the index with no transaction when it exists already. A
        derived record written tells its OpenLineage run."""
        answers: list[Written[DatasetPublic] | LedgerError | None] = []
        missing: list[DatasetInput] = []
        for item in items:
            existing = self._core.dataset(item.content_hash)
            answers.append(
                None
                if existing is None
                else Written(dataset_view(self._core, existing), created=False)
            )
            if existing is None:
                missing.append(item)
        written = iter(self._write(missing, early=early))
        out: list[Written[DatasetPublic] | LedgerError] = []
        for item, answer in zip(items, answers, strict=True):
            if answer is None:
                answer = next(written)
                if isinstance(answer, Written) and answer.created and item.parents:
                    self._core.events.derived(answer.view)  # an OpenLineage run
            out.append(answer)
        return out

    def register_input(self, item: DatasetInput, *, early: bool = False) -> Written[DatasetPublic]:
        """Register a record whose files the caller stored (a stream's version, whose content is
        its manifest): answered from the index, with no transaction, when it exists already
        (``early``: answered once in a block, not once final)."""
        [written] = self.register_inputs([item], early=early)
        if isinstance(written, Exception):
            raise written
        return written

    def _write(
        self, items: list[DatasetInput], *, early: bool = False
    ) -> list[Written[DatasetPublic] | LedgerError]:
        """Hand the records to the write pipeline together; each answer is its view, built
        from the node's receipt, or its own error (``early``: at inclusion, not finality)."""
        if not items:
            return []
        core = self._core
        outcomes = core.writes.write_many(items, early=early)
        core.catch_up()  # one sync for the whole round: a request that follows reads its write
        answers: list[Written[DatasetPublic] | LedgerError] = []
        for item, outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, Included):
                view = dataset_view(core, indexed_dataset(outcome))
                answers.append(Written(view, created=outcome.created))
            elif isinstance(outcome, AlreadyRegistered):
                # registered meanwhile by another writer on the same node: the chain says so
                core.sync()
                indexed = core.index.dataset(item.content_hash)
                answers.append(
                    AlreadyRegistered(f"{item.content_hash} is registered as another kind")
                    if indexed is None
                    else Written(dataset_view(core, indexed), created=False)
                )
            else:
                answers.append(outcome)
        return answers

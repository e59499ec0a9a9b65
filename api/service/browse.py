"""Browsing: the reads the auditor's console needs beyond one record's own view.

A page about a record shows what surrounds it: the records built on it (derived datasets, the
models trained on a dataset, a model's batches of predictions), the revoked ancestor that taints
it, a lineage graph cut to a depth around it, and a search that takes any hash a person may
hold (a record's, a receipt's or a transaction's). The other parts answer one record at a time;
this one joins them for a page, reading the index, the receipt book and, for a transaction
hash, the chain's receipt of that transaction. Nothing here writes. The list pages and the
search over names are :mod:`api.service.listings`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from typing import Literal

from web3.exceptions import TransactionNotFound

from api.errors import UnknownReceipt
from api.schemas import (
    BatchPublic,
    ChainPublic,
    DatasetPublic,
    ModelPublic,
    ReceiptPublic,
)
from api.schemas._common import RevocationPublic
from api.service._core import Core
from api.service.listings import Listings, file_name_of
from api.service.views import batch_view, chain_fields, dataset_view, model_view
from ledger.ancestry import AncestorFacts, walk_ancestry
from ledger.errors import UnknownBatch, UnknownDataset, UnknownModel, UnknownRecord
from ledger.index.base import IndexedBatch, IndexedDataset, IndexedModel, IndexedRecord
from ledger.index.lineage import Direction, LineageEdge, LineageGraph, LineageNode, lineage
from ledger.records import hash_hex

__all__ = [
    "BatchPage",
    "Browse",
    "DatasetPage",
    "Found",
    "ModelPage",
    "Overview",
    "ReceiptPage",
    "Taint",
]

RECENT = 8
FoundKind = Literal["dataset", "model", "batch", "receipt", "transaction"]


@dataclass(frozen=True)
class Taint:
    """A revoked ancestor of a record (``ancestor``, of ``kind``) and its revocation; the first
    one the ancestry walk meets, so the same record always names the same one."""

    ancestor: str
    kind: str
    revocation: RevocationPublic


@dataclass(frozen=True)
class Overview:
    """The front page: where the ledger lives, how much it holds, what came in last."""

    chain: ChainPublic
    datasets: int
    models: int
    receipts: dict[str, int]
    recent_datasets: list[DatasetPublic]
    recent_models: list[ModelPublic]


@dataclass(frozen=True)
class DatasetPage:
    dataset: DatasetPublic
    parents: list[DatasetPublic]
    children: list[DatasetPublic]
    models: list[ModelPublic]
    taint: Taint | None
    file_name: str | None = None  # the uploaded file's name, when its metadata kept one


@dataclass(frozen=True)
class ModelPage:
    model: ModelPublic
    datasets: list[DatasetPublic]
    batches: list[BatchPublic]
    taint: Taint | None


@dataclass(frozen=True)
class BatchPage:
    batch: BatchPublic
    model: ModelPublic
    taint: Taint | None


@dataclass(frozen=True)
class ReceiptPage:
    receipt: ReceiptPublic
    model: ModelPublic | None
    batch: BatchPublic | None
    taint: Taint | None


@dataclass(frozen=True)
class Found:
    """What a searched hash is: one record, a receipt, or the records a transaction wrote."""

    kind: FoundKind
    id: str
    records: tuple[tuple[str, str], ...] = ()  # (kind, hash) for a transaction


class Browse:
    """Read-only joins over the index and the receipt book, one per console page."""

    def __init__(self, core: Core) -> None:
        self._core = core
        self._lists = Listings(core)
        self.listing = self._lists.listing
        self.search = self._lists.search

    # -- the front page and search ---------------------------------------------------------------

    def overview(self, chain: ChainPublic) -> Overview:
        index = self._core.index
        datasets, dataset_count = index.datasets(offset=0, limit=RECENT)
        models, model_count = index.models(offset=0, limit=RECENT)
        return Overview(
            chain=chain,
            datasets=dataset_count,
            models=model_count,
            receipts=self._core.receipts.counts(),
            recent_datasets=[dataset_view(self._core, d) for d in datasets],
            recent_models=[model_view(self._core, m) for m in models],
        )

    def find(self, query: str) -> Found | None:
        """What a hash someone pasted names: a dataset, model or batch, a receipt id, or a
        transaction of the ledger (then the records it registered or revoked). None: nothing.

        Raises ValueError when ``query`` is not a 32-byte hash at all.
        """
        value = hash_hex(query.strip())
        kind = self._kind_of(value)
        if kind is not None:
            return Found(kind, value)
        if self._core.receipts.get(value) is not None:
            return Found("receipt", value)
        records = self.transaction(value)
        return Found("transaction", value, records) if records else None

    def transaction(self, tx_hash: str) -> tuple[tuple[str, str], ...]:
        """The ledger records a transaction registered or revoked, as ``(kind, hash)``, in log
        order; empty when the chain has no such transaction or it touched no record.

        Read from the chain's receipt of the transaction: every ledger event's first indexed
        topic is the record's hash, which the index then names."""
        core = self._core
        w3 = core.backend.w3
        try:
            receipt = w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return ()
        contract = core.client.address.lower()
        found: list[tuple[str, str]] = []
        for log in receipt["logs"]:
            topics = log["topics"]
            if str(log["address"]).lower() != contract or len(topics) < 2:
                continue
            record_hash = hash_hex(bytes(topics[1]))
            kind = self._kind_of(record_hash)
            if kind is not None and (kind, record_hash) not in found:
                found.append((kind, record_hash))
        return tuple(found)

    # -- record pages ----------------------------------------------------------------------------

    def dataset(self, content_hash: str) -> DatasetPage:
        indexed = self._dataset(content_hash)
        index, content = self._core.index, indexed.content_hash
        return DatasetPage(
            dataset=dataset_view(self._core, indexed),
            parents=[dataset_view(self._core, self._dataset(p)) for p in indexed.parents],
            children=[dataset_view(self._core, d) for d in index.children_of_dataset(content)],
            models=[model_view(self._core, m) for m in index.models_of_dataset(content)],
            taint=self.taint(indexed),
            file_name=file_name_of(self._core.json_artifact(indexed.metadata_hash)),
        )  # fmt: skip

    def model(self, model_hash: str) -> ModelPage:
        indexed = self._model(model_hash)
        batches = self._core.index.batches_of_model(indexed.model_hash)
        return ModelPage(
            model=model_view(self._core, indexed),
            datasets=[dataset_view(self._core, self._dataset(d)) for d in indexed.datasets],
            batches=[batch_view(b, self._core) for b in batches],
            taint=self.taint(indexed),
        )

    def batch(self, root: str) -> BatchPage:
        indexed = self._batch(root)
        return BatchPage(
            batch=batch_view(indexed, self._core),
            model=model_view(self._core, self._model(indexed.model_hash)),
            taint=self.taint(indexed),
        )

    def receipt(self, receipt_id: str) -> ReceiptPage:
        """A receipt with its model and batch, and the revoked record that taints it: its
        batch or model itself, or an ancestor of the model."""
        stored = self._core.receipts.get(hash_hex(receipt_id))
        if stored is None:
            raise UnknownReceipt(f"no receipt {receipt_id} was issued here")
        receipt = ReceiptPublic(**stored.to_json())
        index = self._core.index
        model = index.model(receipt.model_hash)
        batch = index.batch(receipt.batch_id) if receipt.batch_id else None
        taint = None
        for record in (batch, model):
            if record is not None and taint is None:
                taint = self._own_revocation(record) or self.taint(record)
        return ReceiptPage(
            receipt=receipt,
            model=None if model is None else model_view(self._core, model),
            batch=None if batch is None else batch_view(batch, self._core),
            taint=taint,
        )

    def taint(self, record: IndexedRecord) -> Taint | None:
        """The first revoked ancestor of ``record`` (itself excluded), or None."""
        ancestry = walk_ancestry(record.inputs, self._facts)
        first = ancestry.first_revoked
        if first is None:
            return None
        return self._own_revocation(self._record(first))

    # -- lineage ---------------------------------------------------------------------------------

    def lineage(self, subject: str, direction: Direction, depth: int | None) -> LineageGraph:
        """The lineage graph around a record, or around a receipt (drawn above its batch, or
        its model while it is pending), cut to ``depth`` record hops from its root."""
        subject = hash_hex(subject)
        receipt_node = None
        start = subject
        if self._kind_of(subject) is None:
            stored = self._core.receipts.get(subject)
            if stored is None:
                raise UnknownRecord(f"no record or receipt is registered under {subject}")
            public = stored.to_json()
            start = public["batch_id"] or public["model_hash"]
            if self._kind_of(start) is None:
                raise UnknownRecord(f"the receipt's {start} is not indexed yet")
            receipt_node = LineageNode(
                id=f"receipt:{subject}",
                kind="receipt",  # type: ignore[arg-type]  # a console-only kind
                label=f"receipt {subject[:10]}",
                hash=subject,
                revoked=False,
                tainted=False,
                block_number=public["block_number"],
                tx_hash=public["tx_hash"],
                registered_at=public["issued_at"],
            )
        graph = lineage(self._core.index, start, direction)
        if receipt_node is not None:
            start_id = f"{self._kind_of(start)}:{start}"
            tainted = graph.node(start_id).tainted
            receipt_node = replace(receipt_node, tainted=tainted)
            graph = LineageGraph(
                root=receipt_node.id,
                direction=direction,
                nodes=tuple(sorted((*graph.nodes, receipt_node), key=lambda n: n.id)),
                edges=tuple(
                    sorted((*graph.edges, LineageEdge(receipt_node.id, start_id, "wasDerivedFrom")))
                ),
            )
        return graph if depth is None else cut_to_depth(graph, depth)

    # -- helpers ---------------------------------------------------------------------------------

    def _kind_of(self, record_hash: str) -> FoundKind | None:
        index = self._core.index
        kind = index.kind_of(record_hash)
        if kind is None:  # anchored or registered moments ago by another writer
            self._core.sync()
            kind = index.kind_of(record_hash)
        return kind

    def _dataset(self, content_hash: str) -> IndexedDataset:
        # as the API reads it: the index caught up with this process's writes, or the write
        # itself while the index lags (the node away), so a page answers where /v1 answers
        self._core.catch_up()
        found = self._core.dataset(content_hash)
        if found is None:
            exc = UnknownDataset(f"no dataset is registered under {content_hash}")
            raise self._core.not_found(exc, content_hash)
        return found

    def _model(self, model_hash: str) -> IndexedModel:
        self._core.catch_up()  # as _dataset
        found = self._core.model(model_hash)
        if found is None:
            exc = UnknownModel(f"no model is registered under {model_hash}")
            raise self._core.not_found(exc, model_hash)
        return found

    def _batch(self, root: str) -> IndexedBatch:
        found = self._core.index.batch(root)
        if found is None and self._kind_of(hash_hex(root)) == "batch":
            found = self._core.index.batch(root)
        if found is None:
            raise UnknownBatch(f"no batch is anchored under {root}")
        return found

    def _record(self, record_hash: str) -> IndexedRecord:
        found = self._core.record(None, record_hash)
        if found is None:
            raise UnknownRecord(f"no record is registered under {record_hash}")
        return found

    def _facts(self, record_hash: str) -> AncestorFacts | None:
        """The ancestry walk's lookup over any kind of record: its inputs are its parents."""
        try:
            record = self._record(record_hash)
        except UnknownRecord:
            return None
        return AncestorFacts(revoked=record.revoked, parents=record.inputs)

    @staticmethod
    def _own_revocation(record: IndexedRecord) -> Taint | None:
        revocation = chain_fields(record)["revocation"]
        if revocation is None:
            return None
        return Taint(record.record_hash, record.kind, RevocationPublic(**revocation))


def cut_to_depth(graph: LineageGraph, depth: int) -> LineageGraph:
    """The part of ``graph`` within ``depth`` record hops of its root (Marquez's "depth"): the
    records reached, the activities between two of them, and the edges among those.

    Hops are counted between records (a derived dataset and its parent are one hop apart, the
    transform between them is not a hop of its own), in either direction along the edges.
    """
    if depth < 0:
        raise ValueError(f"depth is 0 or more, got {depth}")
    activities = {n.id for n in graph.nodes if n.kind in ("transform", "training")}
    neighbours: dict[str, set[str]] = {}
    for edge in graph.edges:
        if edge.relation == "wasDerivedFrom":
            neighbours.setdefault(edge.source, set()).add(edge.target)
            neighbours.setdefault(edge.target, set()).add(edge.source)
    reached = {graph.root: 0}
    queue = deque([graph.root])
    while queue:
        current = queue.popleft()
        if reached[current] == depth:
            continue
        for neighbour in neighbours.get(current, ()):
            if neighbour not in reached:
                reached[neighbour] = reached[current] + 1
                queue.append(neighbour)
    # An activity stays when the record it generated and one record it used both stay.
    generated = {e.target: e.source for e in graph.edges if e.relation == "wasGeneratedBy"}
    used: dict[str, list[str]] = {}
    for edge in graph.edges:
        if edge.relation == "used":
            used.setdefault(edge.source, []).append(edge.target)
    kept = set(reached)
    for activity in activities:
        if generated.get(activity) in reached and any(u in reached for u in used.get(activity, ())):
            kept.add(activity)
    return LineageGraph(
        root=graph.root,
        direction=graph.direction,
        nodes=tuple(n for n in graph.nodes if n.id in kept),
        edges=tuple(e for e in graph.edges if e.source in kept and e.target in kept),
    )

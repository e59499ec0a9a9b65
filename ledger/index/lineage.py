"""The lineage graph of any record, read from the event index, and its W3C PROV-JSON export.

An auditor asks two questions of a record: where did it come from (``"up"``: the datasets,
cleaning steps and training behind it) and what was built on it (``"down"``: derived datasets,
models trained on it, their prediction batches). The graph answers both in the vocabulary of
W3C PROV, so it can be handed to any PROV tool:

- entities: ``dataset``, ``model`` and ``batch`` nodes, one per record on chain;
- activities: a ``transform`` per derived dataset (id ``transform:<transform hash>:<dataset
  hash>``: the same transform applied to two sets of parents is two activities) and a
  ``training`` per model (id ``training:<model hash>``, whose ``hash`` is the model's
  training-metadata hash, the document that describes the run);
- relations: ``wasDerivedFrom`` (derived dataset → parent, model → training dataset, batch →
  model), ``wasGeneratedBy`` (derived dataset → transform, model → training) and ``used``
  (transform → parent, training → training dataset).

A batch is linked to its model by ``wasDerivedFrom`` rather than by an invented ``prediction``
relation, so the export stays within PROV's core relations: the batch's receipts are derived
from the model's outputs. No prediction activity is recorded because the chain records none.

Every node carries ``revoked`` (its own revocation) and ``tainted`` (it, or anything upstream of
it, is revoked). Taint is computed over the whole upstream closure from the index, even for a
``"down"`` graph that does not show that closure, because the answer must not depend on which
part of the graph was asked for. Activities are never revoked (the chain cannot revoke them);
they are tainted when something they used is. The walk behind taint is
:func:`ledger.ancestry.walk_ancestry`, re-exported here with :func:`first_revoked_ancestor`.

(Just over 400 lines: the graph and its PROV-JSON export are one vocabulary and change together.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from ledger.ancestry import AncestorFacts, first_revoked_ancestor, walk_ancestry
from ledger.errors import UnknownRecord
from ledger.index.base import (
    EventIndex,
    IndexedBatch,
    IndexedDataset,
    IndexedModel,
    IndexedRecord,
    indexed_record,
)
from ledger.records import hash_hex

__all__ = [
    "PROV_NAMESPACE",
    "Direction",
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "NodeKind",
    "RecordNotIndexed",
    "Relation",
    "first_revoked_ancestor",
    "lineage",
    "to_prov",
]

Direction = Literal["up", "down", "both"]
NodeKind = Literal["dataset", "transform", "training", "model", "batch"]
Relation = Literal["wasDerivedFrom", "wasGeneratedBy", "used"]

PROV_NAMESPACE = "urn:provenance-ledger:"
_PREFIX = "ledger"
_DIRECTIONS = ("up", "down", "both")
_PROV_TYPES = {
    "dataset": "Dataset",
    "model": "Model",
    "batch": "PredictionBatch",
    "transform": "Transform",
    "training": "Training",
}
_ACTIVITY_KINDS = ("transform", "training")


class RecordNotIndexed(UnknownRecord):
    """The index holds no record under this hash."""

    hint = "check the hash, or sync the index if the record was registered moments ago"


@dataclass(frozen=True)
class LineageNode:
    """One entity (dataset, model, batch) or activity (transform, training) of a lineage graph.

    ``hash`` is the record's hash, a transform's hash or a training's metadata hash; the chain
    coordinates of an activity are those of the registration that recorded it.
    """

    id: str
    kind: NodeKind
    label: str
    hash: str | None
    revoked: bool
    tainted: bool
    revoked_reason: str | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    registered_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, order=True)
class LineageEdge:
    """``source`` <relation> ``target``, read as PROV reads it: the derived dataset
    wasDerivedFrom its parent, the transform used the parent."""

    source: str
    target: str
    relation: Relation

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LineageGraph:
    """Nodes sorted by id and edges sorted by (source, target, relation), so the same index
    always gives the same graph, byte for byte once serialised."""

    root: str
    direction: Direction
    nodes: tuple[LineageNode, ...]
    edges: tuple[LineageEdge, ...]

    def node(self, node_id: str) -> LineageNode:
        """The node with this id; raises KeyError."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``json.dumps`` it for text)."""
        return {
            "root": self.root,
            "direction": self.direction,
            "nodes": [node.to_json() for node in self.nodes],
            "edges": [edge.to_json() for edge in self.edges],
        }


def lineage(
    index: EventIndex, record_hash: bytes | str, direction: Direction = "up"
) -> LineageGraph:
    """The lineage graph of a dataset, model or batch.

    ``"up"`` follows what the record came from, ``"down"`` what was built on it, ``"both"`` is
    the union of the two (not the whole connected component: a sibling dataset derived from the
    same parent is neither an ancestor nor a descendant). Raises :class:`RecordNotIndexed` for a
    hash the index does not know.
    """
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction is one of {', '.join(_DIRECTIONS)}, got {direction!r}")
    builder = _Builder(index)
    root = builder.record(hash_hex(record_hash))
    if direction in ("up", "both"):
        builder.walk_up(root)
    if direction in ("down", "both"):
        builder.walk_down(root)
    return builder.graph(_record_id(root), direction)


def to_prov(graph: LineageGraph) -> dict[str, Any]:
    """The graph as a W3C PROV-JSON document (https://www.w3.org/submissions/prov-json/).

    Node ids become qualified names under the ``ledger`` prefix (``ledger:dataset:0x...``);
    relations get blank-node ids (``_:wDF1``), numbered in the graph's edge order. A derivation
    names the activity behind it (``prov:activity``) when the graph holds it.
    """
    entities: dict[str, Any] = {}
    activities: dict[str, Any] = {}
    for node in graph.nodes:
        (activities if node.kind in _ACTIVITY_KINDS else entities)[_qname(node.id)] = (
            _prov_attributes(node)
        )
    generated_by = {e.source: e.target for e in graph.edges if e.relation == "wasGeneratedBy"}
    used = {(e.source, e.target) for e in graph.edges if e.relation == "used"}
    sections: dict[str, dict[str, Any]] = {"wasDerivedFrom": {}, "wasGeneratedBy": {}, "used": {}}
    short = {"wasDerivedFrom": "wDF", "wasGeneratedBy": "wGB", "used": "u"}
    for edge in graph.edges:
        section = sections[edge.relation]
        key = f"_:{short[edge.relation]}{len(section) + 1}"
        if edge.relation == "wasDerivedFrom":
            relation = {
                "prov:generatedEntity": _qname(edge.source),
                "prov:usedEntity": _qname(edge.target),
            }
            activity = generated_by.get(edge.source)
            if activity is not None and (activity, edge.target) in used:
                relation["prov:activity"] = _qname(activity)
        elif edge.relation == "wasGeneratedBy":
            relation = {"prov:entity": _qname(edge.source), "prov:activity": _qname(edge.target)}
        else:
            relation = {"prov:activity": _qname(edge.source), "prov:entity": _qname(edge.target)}
        section[key] = relation
    return {
        "prefix": {_PREFIX: PROV_NAMESPACE},
        "entity": entities,
        "activity": activities,
        **sections,
    }


# -- building ---------------------------------------------------------------------------------


class _Builder:
    """Collects nodes and edges; caches records and taint so each is read from the index once."""

    def __init__(self, index: EventIndex) -> None:
        self.index = index
        self._records: dict[str, IndexedRecord] = {}
        self._tainted: dict[str, bool] = {}
        self.nodes: dict[str, LineageNode] = {}
        self.edges: set[LineageEdge] = set()

    def record(self, record_hash: str) -> IndexedRecord:
        cached = self._records.get(record_hash)
        if cached is not None:
            return cached
        found = indexed_record(self.index, None, record_hash)
        if found is None:
            last = self.index.last_block
            where = "an empty index" if last is None else f"the index (synced to block {last})"
            raise RecordNotIndexed(
                f"no dataset, model or batch {record_hash} is in {where}",
                record_hash=record_hash,
            )
        self._records[record_hash] = found
        return found

    # 1. walking --------------------------------------------------------------------------------

    def walk_up(self, start: IndexedRecord) -> None:
        """Add ``start`` and everything it came from."""
        queue, seen = [start], {start.record_hash}
        while queue:
            record = queue.pop()
            self.add_record(record)
            for input_hash in record.inputs:
                self._add_generation(record, input_hash)
                if input_hash not in seen:
                    seen.add(input_hash)
                    queue.append(self.record(input_hash))

    def walk_down(self, start: IndexedRecord) -> None:
        """Add ``start`` and everything built on it."""
        queue, seen = [start], {start.record_hash}
        while queue:
            record = queue.pop()
            self.add_record(record)
            for consumer in self._consumers(record):
                self._records.setdefault(consumer.record_hash, consumer)
                self.add_record(consumer)
                self._add_generation(consumer, record.record_hash)
                if consumer.record_hash not in seen:
                    seen.add(consumer.record_hash)
                    queue.append(consumer)

    def _consumers(self, record: IndexedRecord) -> list[IndexedRecord]:
        if isinstance(record, IndexedDataset):
            return [
                *self.index.children_of_dataset(record.content_hash),
                *self.index.models_of_dataset(record.content_hash),
            ]
        if isinstance(record, IndexedModel):
            return list(self.index.batches_of_model(record.model_hash))
        return []

    # 2. nodes and edges ----------------------------------------------------------------------

    def add_record(self, record: IndexedRecord) -> None:
        node_id = _record_id(record)
        if node_id in self.nodes:
            return
        if isinstance(record, IndexedDataset):
            kind: NodeKind = "dataset"
            label = f"dataset {_short(record.content_hash)} ({record.row_count} rows)"
        elif isinstance(record, IndexedModel):
            kind, label = "model", f"model {_short(record.model_hash)}"
        else:
            kind = "batch"
            label = f"batch {_short(record.root)} ({record.count} predictions)"
        self.nodes[node_id] = LineageNode(
            id=node_id,
            kind=kind,
            label=label,
            hash=record.record_hash,
            revoked=record.revoked,
            tainted=self.tainted(record.record_hash),
            revoked_reason=None if record.revocation is None else record.revocation.reason,
            tx_hash=record.registration.tx_hash,
            block_number=record.registration.block_number,
            registered_at=record.registration.registered_at,
        )

    def _add_generation(self, record: IndexedRecord, input_hash: str) -> None:
        """The edges saying ``record`` was made from ``input_hash``, and the activity between."""
        source, target = _record_id(record), f"{self._kind_of_input(record)}:{input_hash}"
        self.edges.add(LineageEdge(source, target, "wasDerivedFrom"))
        activity = self._activity(record)
        if activity is not None:
            self.nodes.setdefault(activity.id, activity)
            self.edges.add(LineageEdge(source, activity.id, "wasGeneratedBy"))
            self.edges.add(LineageEdge(activity.id, target, "used"))

    @staticmethod
    def _kind_of_input(record: IndexedRecord) -> str:
        return "model" if isinstance(record, IndexedBatch) else "dataset"

    def _activity(self, record: IndexedRecord) -> LineageNode | None:
        if isinstance(record, IndexedDataset) and record.parents:
            node_id = f"transform:{record.transform_hash}:{record.content_hash}"
            kind: NodeKind = "transform"
            activity_hash = record.transform_hash
            label = f"transform {_short(record.transform_hash)}"
        elif isinstance(record, IndexedModel):
            node_id = f"training:{record.model_hash}"
            kind, activity_hash = "training", record.metadata_hash
            label = f"training of model {_short(record.model_hash)}"
        else:
            return None
        return LineageNode(
            id=node_id,
            kind=kind,
            label=label,
            hash=activity_hash,
            revoked=False,
            tainted=any(self.tainted(i) for i in record.inputs),
            tx_hash=record.registration.tx_hash,
            block_number=record.registration.block_number,
            registered_at=record.registration.registered_at,
        )

    # 3. taint over the whole upstream closure ------------------------------------------------

    def tainted(self, record_hash: str) -> bool:
        """Whether the record or anything upstream of it is revoked.

        One walk settles the taint of every record it visits, so each record is walked over
        once per graph however many nodes ask (linear, even for a long chain of cleaning
        steps).
        """
        if record_hash not in self._tainted:
            ancestry = walk_ancestry([record_hash], self._taint_facts)
            for visited in ancestry.visited:
                self._tainted.setdefault(visited, visited in ancestry.tainted)
        return self._tainted[record_hash]

    def _taint_facts(self, record_hash: str) -> AncestorFacts:
        """The walk's lookup, over any record's inputs. A record whose taint an earlier walk
        settled is answered as (revoked = its taint, no inputs): its upstream was walked
        already, and a tainted input taints exactly as a revoked one would. An unknown hash
        raises :class:`RecordNotIndexed`."""
        settled = self._tainted.get(record_hash)
        if settled is not None:
            return AncestorFacts(revoked=settled, parents=())
        record = self.record(record_hash)
        return AncestorFacts(revoked=record.revoked, parents=record.inputs)

    def graph(self, root: str, direction: Direction) -> LineageGraph:
        return LineageGraph(
            root=root,
            direction=direction,
            nodes=tuple(sorted(self.nodes.values(), key=lambda node: node.id)),
            edges=tuple(sorted(self.edges)),
        )


# -- helpers ----------------------------------------------------------------------------------


def _record_id(record: IndexedRecord) -> str:
    return f"{record.kind}:{record.record_hash}"


def _short(value: str) -> str:
    return value[:10]


def _qname(node_id: str) -> str:
    return f"{_PREFIX}:{node_id}"


def _prov_attributes(node: LineageNode) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "prov:type": {"$": _qname(_PROV_TYPES[node.kind]), "type": "xsd:QName"},
        "prov:label": node.label,
    }
    if node.hash is not None:
        attributes[f"{_PREFIX}:hash"] = node.hash
    if node.kind not in _ACTIVITY_KINDS:
        attributes[f"{_PREFIX}:revoked"] = node.revoked
    attributes[f"{_PREFIX}:tainted"] = node.tainted
    if node.revoked_reason is not None:
        attributes[f"{_PREFIX}:revokedReason"] = node.revoked_reason
    if node.tx_hash is not None:
        attributes[f"{_PREFIX}:txHash"] = node.tx_hash
    if node.block_number is not None:
        attributes[f"{_PREFIX}:blockNumber"] = node.block_number
    if node.registered_at is not None:
        moment = datetime.fromtimestamp(node.registered_at, tz=UTC).isoformat()
        attributes[f"{_PREFIX}:registeredAt"] = {"$": moment, "type": "xsd:dateTime"}
    return attributes

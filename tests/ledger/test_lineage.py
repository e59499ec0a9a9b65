"""Lineage graphs from the event index: exact node and edge sets up, down and both ways, taint
flowing downstream from a revocation, and a PROV-JSON export that the independent ``prov``
package reads back with the same counts. The chain scenarios run on every backend; a property
test checks the graph against brute-force closures over random lineages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prov.model import (
    ProvActivity,
    ProvDerivation,
    ProvDocument,
    ProvEntity,
    ProvGeneration,
    ProvUsage,
)

from ledger.ancestry import AncestorFacts, Ancestry, walk_ancestry
from ledger.index import _sync as _index_sync
from ledger.index.lineage import (
    LineageEdge,
    LineageGraph,
    RecordNotIndexed,
    first_revoked_ancestor,
    lineage,
    to_prov,
)
from ledger.index.sqlite import LedgerIndex
from ledger.records import (
    ZERO_HASH,
    DatasetRegistered,
    ModelRegistered,
    PredictionsAnchored,
    RecordKind,
    RecordRevoked,
    hash_hex,
)


def h(n: int) -> str:
    """A distinct, nonzero 32-byte hash for test number ``n``."""
    return hash_hex(keccak(n.to_bytes(32, "big")))


RAW, EXTRA, CLEAN, SIBLING = h(1), h(2), h(3), h(4)
MODEL, BATCH = h(10), h(20)
TRANSFORM, TRAINING_METADATA = h(50), h(60)

# node ids
D_RAW, D_EXTRA, D_CLEAN, D_SIBLING = (f"dataset:{x}" for x in (RAW, EXTRA, CLEAN, SIBLING))
M, B = f"model:{MODEL}", f"batch:{BATCH}"
T_CLEAN, T_SIBLING = f"transform:{TRANSFORM}:{CLEAN}", f"transform:{TRANSFORM}:{SIBLING}"
TRAIN = f"training:{MODEL}"

CLEAN_EDGES = {
    (D_CLEAN, D_RAW, "wasDerivedFrom"),
    (D_CLEAN, D_EXTRA, "wasDerivedFrom"),
    (D_CLEAN, T_CLEAN, "wasGeneratedBy"),
    (T_CLEAN, D_RAW, "used"),
    (T_CLEAN, D_EXTRA, "used"),
}
MODEL_EDGES = {
    (M, D_CLEAN, "wasDerivedFrom"),
    (M, TRAIN, "wasGeneratedBy"),
    (TRAIN, D_CLEAN, "used"),
}
BATCH_EDGES = {(B, M, "wasDerivedFrom")}
SIBLING_EDGES = {
    (D_SIBLING, D_EXTRA, "wasDerivedFrom"),
    (D_SIBLING, T_SIBLING, "wasGeneratedBy"),
    (T_SIBLING, D_EXTRA, "used"),
}


def register(client, content_hash, parents=(), transform=ZERO_HASH):
    return client.register_dataset(
        content_hash,
        rows_root=h(900),
        row_count=42,
        schema_hash=h(901),
        parents=parents,
        transform_hash=transform,
    )


@pytest.fixture
def chain_index(deployed, tmp_path: Path):
    """raw + extra → clean → model → batch, and a sibling cleaned from extra by the same
    transform; indexed from the chain's own events."""
    client = deployed.registrar
    register(client, RAW)
    register(client, EXTRA)
    register(client, CLEAN, parents=[RAW, EXTRA], transform=TRANSFORM)
    register(client, SIBLING, parents=[EXTRA], transform=TRANSFORM)
    client.register_model(MODEL, datasets=[CLEAN], metadata_hash=TRAINING_METADATA)
    client.anchor_predictions(MODEL, BATCH, 3)
    index = LedgerIndex(tmp_path / "index.sqlite")
    index.sync(client)
    yield client, index
    index.close()


def ids(graph: LineageGraph) -> set[str]:
    return {node.id for node in graph.nodes}


def edges(graph: LineageGraph) -> set[tuple[str, str, str]]:
    return {(e.source, e.target, e.relation) for e in graph.edges}


def tainted(graph: LineageGraph) -> set[str]:
    return {node.id for node in graph.nodes if node.tainted}


# -- shapes -------------------------------------------------------------------------------------


def test_up_from_a_batch_reaches_the_raw_data(chain_index):
    _, index = chain_index
    graph = lineage(index, BATCH, "up")
    assert graph.root == B and graph.direction == "up"
    assert ids(graph) == {B, M, TRAIN, D_CLEAN, T_CLEAN, D_RAW, D_EXTRA}
    assert edges(graph) == BATCH_EDGES | MODEL_EDGES | CLEAN_EDGES


def test_up_is_the_default_and_a_raw_dataset_is_alone(chain_index):
    _, index = chain_index
    graph = lineage(index, RAW)
    assert graph.direction == "up"
    assert ids(graph) == {D_RAW} and graph.edges == ()


def test_down_from_a_shared_parent_reaches_both_children_and_what_they_fed(chain_index):
    _, index = chain_index
    graph = lineage(index, EXTRA, "down")
    assert ids(graph) == {D_EXTRA, D_CLEAN, T_CLEAN, D_SIBLING, T_SIBLING, M, TRAIN, B}
    # clean's other parent is no descendant of extra: neither it nor its edges appear
    expected = (CLEAN_EDGES - {e for e in CLEAN_EDGES if D_RAW in e}) | SIBLING_EDGES
    assert edges(graph) == expected | MODEL_EDGES | BATCH_EDGES


def test_down_from_raw_leaves_out_the_sibling(chain_index):
    _, index = chain_index
    graph = lineage(index, RAW, "down")
    assert ids(graph) == {D_RAW, D_CLEAN, T_CLEAN, M, TRAIN, B}
    clean_from_raw = {e for e in CLEAN_EDGES if D_EXTRA not in e}
    assert edges(graph) == clean_from_raw | MODEL_EDGES | BATCH_EDGES


def test_both_is_the_union_of_up_and_down_not_the_component(chain_index):
    _, index = chain_index
    graph = lineage(index, CLEAN, "both")
    assert ids(graph) == {D_RAW, D_EXTRA, T_CLEAN, D_CLEAN, M, TRAIN, B}  # no sibling
    assert edges(graph) == CLEAN_EDGES | MODEL_EDGES | BATCH_EDGES
    up, down = lineage(index, CLEAN, "up"), lineage(index, CLEAN, "down")
    assert set(graph.nodes) == set(up.nodes) | set(down.nodes)
    assert set(graph.edges) == set(up.edges) | set(down.edges)


def test_down_from_a_batch_is_just_the_batch(chain_index):
    _, index = chain_index
    assert ids(lineage(index, BATCH, "down")) == {B}


def test_one_transform_on_two_parent_sets_is_two_activities(chain_index):
    _, index = chain_index
    graph = lineage(index, EXTRA, "down")
    transforms = [node for node in graph.nodes if node.kind == "transform"]
    assert [t.id for t in transforms] == sorted([T_CLEAN, T_SIBLING])
    assert {t.hash for t in transforms} == {TRANSFORM}


def test_nodes_carry_their_chain_coordinates(chain_index):
    client, index = chain_index
    graph = lineage(index, BATCH, "up")
    clean_event = client.dataset_registration(CLEAN)
    model_event = client.model_registration(MODEL)
    clean, transform = graph.node(D_CLEAN), graph.node(T_CLEAN)
    assert (clean.kind, clean.hash, clean.tx_hash, clean.block_number) == (
        "dataset",
        CLEAN,
        clean_event.tx_hash,
        clean_event.block_number,
    )
    assert clean.registered_at == client.get_records([CLEAN])[0].registered_at
    # an activity sits in the transaction that recorded it
    assert (transform.kind, transform.tx_hash) == ("transform", clean_event.tx_hash)
    training = graph.node(TRAIN)
    assert (training.kind, training.hash) == ("training", TRAINING_METADATA)
    assert training.tx_hash == model_event.tx_hash
    batch = graph.node(B)
    assert (batch.kind, batch.hash, batch.label) == (
        "batch",
        BATCH,
        f"batch {BATCH[:10]} (3 predictions)",
    )


def test_graph_is_sorted_and_its_json_is_deterministic(chain_index):
    _, index = chain_index
    graph = lineage(index, CLEAN, "both")
    assert [n.id for n in graph.nodes] == sorted(n.id for n in graph.nodes)
    assert list(graph.edges) == sorted(graph.edges)
    text = json.dumps(graph.to_json())
    assert text == json.dumps(lineage(index, CLEAN, "both").to_json())
    loaded = json.loads(text)
    assert loaded["root"] == D_CLEAN
    assert {tuple(e.values()) for e in loaded["edges"]} == edges(graph)
    assert set(loaded["nodes"][0]) >= {"id", "kind", "hash", "revoked", "tainted", "label"}


# -- revocation and taint -----------------------------------------------------------------------


def test_revoking_raw_data_taints_everything_downstream(chain_index):
    client, index = chain_index
    client.revoke(RAW, "collected without consent")
    index.sync(client)
    graph = lineage(index, EXTRA, "both")  # raw itself is not in this graph
    assert tainted(graph) == {D_CLEAN, T_CLEAN, M, TRAIN, B}
    assert {n.id for n in graph.nodes if n.revoked} == set()
    full = lineage(index, BATCH, "up")
    assert {n.id for n in full.nodes if n.revoked} == {D_RAW}
    assert full.node(D_RAW).revoked_reason == "collected without consent"
    assert tainted(full) == {D_RAW, D_CLEAN, T_CLEAN, M, TRAIN, B}
    # "down" from the model cannot see raw, yet knows the model is tainted
    assert tainted(lineage(index, MODEL, "down")) == {M, B}
    assert not lineage(index, SIBLING).node(D_SIBLING).tainted


def test_revoking_a_model_taints_its_batches_not_its_data(chain_index):
    client, index = chain_index
    client.revoke(MODEL, "overfitted")
    index.sync(client)
    graph = lineage(index, RAW, "down")
    assert tainted(graph) == {M, B}
    assert {n.id for n in graph.nodes if n.revoked} == {M}
    assert not graph.node(TRAIN).tainted  # the training used clean data


# -- errors -------------------------------------------------------------------------------------


def test_unknown_hash_raises_a_lookup_error(chain_index):
    _, index = chain_index
    with pytest.raises(RecordNotIndexed, match=h(999)) as caught:
        lineage(index, h(999), "both")
    assert isinstance(caught.value, LookupError)
    assert "synced to block" in str(caught.value)


def test_bad_direction_and_bad_hash(chain_index):
    _, index = chain_index
    with pytest.raises(ValueError, match="direction"):
        lineage(index, RAW, "sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hash"):
        lineage(index, "0x1234")


# -- the one walk for revoked ancestors ---------------------------------------------------------


def counting(facts: dict[str, tuple[bool, tuple[str, ...]]]):
    """A lookup over ``facts`` that records every hash it is asked about."""
    asked: list[str] = []

    def lookup(record_hash: str) -> AncestorFacts | None:
        asked.append(record_hash)
        found = facts.get(record_hash)
        return None if found is None else AncestorFacts(*found)

    return lookup, asked


def test_the_walk_finds_every_revoked_and_unknown_ancestor_once():
    # a ← b ← d, a ← c ← d (a diamond); c is revoked, so is its parent a; e is unknown
    facts = {
        "d": (False, ("b", "c")),
        "b": (False, ("a",)),
        "c": (True, ("a", "e")),
        "a": (True, ()),
    }
    lookup, asked = counting(facts)
    ancestry = walk_ancestry(["d"], lookup)
    assert ancestry == Ancestry(
        visited=("d", "c", "e", "a", "b"),  # depth first, last parent first
        revoked=("c", "a"),  # it went on past c to find a
        unknown=("e",),
        tainted=frozenset({"a", "b", "c", "d"}),
    )
    assert ancestry.first_revoked == "c"
    assert sorted(asked) == sorted(ancestry.visited)  # each hash asked about once


def test_the_walk_from_several_starts_and_with_nothing_revoked():
    facts = {"x": (False, ("r",)), "y": (False, ("r",)), "r": (False, ())}
    ancestry = walk_ancestry(("x", "y", "x"), counting(facts)[0])
    assert ancestry.visited == ("x", "r", "y")  # the last start first, duplicates once
    assert ancestry.first_revoked is None and ancestry.revoked == ancestry.unknown == ()
    assert ancestry.tainted == frozenset()
    assert walk_ancestry([], counting(facts)[0]).visited == ()


def test_the_walk_taints_only_what_was_made_from_a_revoked_record():
    facts = {
        "top": (False, ("left", "right")),
        "left": (False, ("bad",)),
        "right": (False, ("good",)),
        "bad": (True, ()),
        "good": (False, ()),
    }
    ancestry = walk_ancestry(["top"], counting(facts)[0])
    assert ancestry.tainted == frozenset({"top", "left", "bad"})


def test_the_walk_survives_a_cycle_and_a_very_long_chain():
    looped = walk_ancestry(["p"], counting({"p": (False, ("q",)), "q": (True, ("p",))})[0])
    assert looped.visited == ("p", "q") and looped.tainted == frozenset({"p", "q"})
    depth = 50_000
    chain = {str(n): (n == 0, (str(n - 1),) if n else ()) for n in range(depth)}
    long = walk_ancestry([str(depth - 1)], counting(chain)[0])
    assert len(long.visited) == depth and long.revoked == ("0",) and len(long.tainted) == depth


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_the_walk_matches_brute_force_closures(data):
    size = data.draw(st.integers(1, 12))
    parents = {
        n: tuple(data.draw(st.lists(st.integers(0, n - 1), max_size=3, unique=True)) if n else ())
        for n in range(size)
    }
    revoked = set(data.draw(st.lists(st.integers(0, size - 1), unique=True)))
    unknown = set(data.draw(st.lists(st.integers(0, size - 1), max_size=2, unique=True)))
    facts = {str(n): (n in revoked, tuple(map(str, p))) for n, p in parents.items()}
    for n in unknown:
        del facts[str(n)]
    starts = data.draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=3))
    lookup, asked = counting(facts)
    ancestry = walk_ancestry([str(n) for n in starts], lookup)

    def upstream(n: int) -> set[int]:  # n and everything reachable through known records
        found, todo = {n}, [n]
        while todo:
            x = todo.pop()
            for p in parents[x] if x not in unknown else ():
                if p not in found:
                    found.add(p)
                    todo.append(p)
        return found

    reached = set().union(*(upstream(n) for n in starts))
    assert set(ancestry.visited) == {str(n) for n in reached}
    assert len(asked) == len(ancestry.visited)
    assert set(ancestry.revoked) == {str(n) for n in reached & revoked - unknown}
    assert set(ancestry.unknown) == {str(n) for n in reached & unknown}
    assert ancestry.tainted == {str(n) for n in reached if upstream(n) & (revoked - unknown)}


def test_the_walk_over_the_index_finds_a_revoked_grandparent(chain_index):
    """An indexed dataset is what the walk needs to know, so ``index.dataset`` is a lookup."""
    client, index = chain_index
    datasets = index.model(MODEL).datasets
    assert first_revoked_ancestor(datasets, index.dataset) is None
    client.revoke(RAW, "collected without consent")
    index.sync(client)
    assert first_revoked_ancestor(datasets, index.dataset) == RAW
    ancestry = walk_ancestry(datasets, index.dataset)
    assert set(ancestry.visited) == {CLEAN, RAW, EXTRA} and ancestry.unknown == ()
    assert ancestry.tainted == {CLEAN, RAW}
    assert first_revoked_ancestor([SIBLING], index.dataset) is None
    assert walk_ancestry([h(999)], index.dataset).unknown == (h(999),)  # passed over
    assert first_revoked_ancestor([h(999), CLEAN], index.dataset) == RAW


# -- PROV-JSON ----------------------------------------------------------------------------------


def read_back(graph: LineageGraph) -> ProvDocument:
    return ProvDocument.deserialize(content=json.dumps(to_prov(graph)), format="json")


def assert_prov_counts_match(graph: LineageGraph) -> ProvDocument:
    document = read_back(graph)
    kinds = [n.kind for n in graph.nodes]
    relations = [e.relation for e in graph.edges]
    counts = {cls: len(list(document.get_records(cls))) for cls in _PROV_CLASSES}
    assert counts == {
        ProvEntity: sum(k in ("dataset", "model", "batch") for k in kinds),
        ProvActivity: sum(k in ("transform", "training") for k in kinds),
        ProvDerivation: relations.count("wasDerivedFrom"),
        ProvGeneration: relations.count("wasGeneratedBy"),
        ProvUsage: relations.count("used"),
    }
    return document


_PROV_CLASSES = (ProvEntity, ProvActivity, ProvDerivation, ProvGeneration, ProvUsage)


@pytest.mark.parametrize(
    ("record", "direction"), [(BATCH, "up"), (EXTRA, "down"), (CLEAN, "both"), (RAW, "up")]
)
def test_prov_json_reads_back_with_the_same_counts(chain_index, record, direction):
    client, index = chain_index
    client.revoke(EXTRA, "duplicate of another source")
    index.sync(client)
    assert_prov_counts_match(lineage(index, record, direction))


def test_prov_json_carries_the_ledger_attributes(chain_index):
    client, index = chain_index
    client.revoke(RAW, "collected without consent")
    index.sync(client)
    graph = lineage(index, BATCH, "up")
    doc = to_prov(graph)
    assert doc["prefix"] == {"ledger": "urn:provenance-ledger:"}
    raw = doc["entity"][f"ledger:{D_RAW}"]
    assert raw["ledger:hash"] == RAW
    assert raw["ledger:revoked"] is True and raw["ledger:tainted"] is True
    assert raw["prov:type"] == {"$": "ledger:Dataset", "type": "xsd:QName"}
    assert raw["ledger:revokedReason"] == "collected without consent"
    assert doc["activity"][f"ledger:{TRAIN}"]["ledger:hash"] == TRAINING_METADATA
    derivations = list(doc["wasDerivedFrom"].values())
    assert {
        "prov:generatedEntity": f"ledger:{D_CLEAN}",
        "prov:usedEntity": f"ledger:{D_RAW}",
        "prov:activity": f"ledger:{T_CLEAN}",
    } in derivations
    assert {"prov:generatedEntity": f"ledger:{B}", "prov:usedEntity": f"ledger:{M}"} in derivations
    document = read_back(graph)
    (entity,) = [e for e in document.get_records(ProvEntity) if str(e.identifier).endswith(RAW)]
    attributes = {str(k): v for k, v in entity.attributes}
    assert attributes["ledger:revoked"] is True
    assert attributes["ledger:blockNumber"] == graph.node(D_RAW).block_number
    assert str(attributes["prov:type"]) == "ledger:Dataset"
    assert attributes["ledger:registeredAt"].timestamp() == graph.node(D_RAW).registered_at


# -- properties over random lineages, without a chain ------------------------------------------


@st.composite
def lineages(draw: st.DrawFn) -> list[tuple[str, int, tuple[int, ...]]]:
    """A random lineage as (kind, n, inputs): inputs only name earlier records, as on chain."""
    records: list[tuple[str, int, tuple[int, ...]]] = []
    for n in range(draw(st.integers(1, 14))):
        datasets = [i for i, r in enumerate(records) if r[0] == "dataset"]
        models = [i for i, r in enumerate(records) if r[0] == "model"]
        kinds = ["dataset"] + (["model"] if datasets else []) + (["batch"] if models else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "batch":
            inputs: tuple[int, ...] = (draw(st.sampled_from(models)),)
        elif datasets:
            at_least = 1 if kind == "model" else 0
            some = st.lists(st.sampled_from(datasets), min_size=at_least, max_size=3, unique=True)
            inputs = tuple(draw(some))
        else:
            inputs = ()
        records.append((kind, n, inputs))
    return records


def index_from(path: Path, records, revoked: set[int]) -> LedgerIndex:
    """A real LedgerIndex filled with synthetic events, in chain order."""
    index = LedgerIndex(path)
    where = {"tx_hash": h(7000), "log_index": 0, "registrant": "0x" + "11" * 20}
    events = []
    for kind, n, inputs in records:
        at = {**where, "block_number": n + 1}
        if kind == "dataset":
            events.append(
                DatasetRegistered(
                    **at,
                    content_hash=h(n),
                    rows_root=h(900),
                    row_count=n,
                    schema_hash=h(901),
                    metadata_hash=ZERO_HASH,
                    parents=tuple(h(i) for i in inputs),
                    transform_hash=h(5000 + n % 2) if inputs else ZERO_HASH,
                )
            )
        elif kind == "model":
            datasets = tuple(h(i) for i in inputs)
            events.append(
                ModelRegistered(**at, model_hash=h(n), datasets=datasets, metadata_hash=h(6000))
            )
        else:
            events.append(PredictionsAnchored(**at, root=h(n), model_hash=h(inputs[0]), count=1))
    for n in sorted(revoked):
        revocation = RecordRevoked(
            tx_hash=h(7001),
            block_number=len(records) + 1,
            log_index=n,
            record_hash=h(n),
            revoker=where["registrant"],
            kind=RecordKind[records[n][0].upper()],
            reason="withdrawn",
        )
        events.append(revocation)
    conn = index._db.get()
    with index._db.write(conn):
        times = {event.block_number: 1_700_000_000 + event.block_number for event in events}
        _index_sync.apply_events(conn, events, times, contract="0x" + "ab" * 20)
    return index


def closure(records, start: int, step) -> set[int]:
    found, todo = set(), [start]
    while todo:
        for nxt in step(todo.pop()):
            if nxt not in found:
                found.add(nxt)
                todo.append(nxt)
    return found


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=lineages(), data=st.data())
def test_graphs_match_brute_force_closures(tmp_path_factory, records, data):
    revoked = set(data.draw(st.lists(st.sampled_from(range(len(records))), unique=True)))
    index = index_from(tmp_path_factory.mktemp("prop") / "index.sqlite", records, revoked)
    inputs_of = {n: inputs for _, n, inputs in records}
    number_of = {h(n): n for n in inputs_of}
    users_of = {n: [m for _, m, inputs in records if n in inputs] for n in inputs_of}
    try:
        for n in inputs_of:
            ancestors = closure(records, n, lambda x: inputs_of[x])
            descendants = closure(records, n, lambda x: users_of[x])
            graphs = {d: lineage(index, h(n), d) for d in ("up", "down", "both")}
            for direction, expected in (
                ("up", ancestors),
                ("down", descendants),
                ("both", ancestors | descendants),
            ):
                graph = graphs[direction]
                records_in = {
                    node.hash for node in graph.nodes if node.kind in ("dataset", "model", "batch")
                }
                assert records_in == {h(x) for x in expected | {n}}
                node_ids = ids(graph)
                assert all(e.source in node_ids and e.target in node_ids for e in graph.edges)
                for node in graph.nodes:  # taint over the whole upstream closure
                    if node.kind in ("dataset", "model", "batch"):
                        x = number_of[node.hash]
                        upstream = closure(records, x, lambda y: inputs_of[y]) | {x}
                        assert node.tainted == bool(upstream & revoked)
                        assert node.revoked == (x in revoked)
                assert_prov_counts_match(graph)
            both = graphs["both"]
            assert set(both.edges) == set(graphs["up"].edges) | set(graphs["down"].edges)
    finally:
        index.close()


def test_a_very_long_cleaning_chain_does_not_recurse(tmp_path):
    depth = 3_000
    records = [("dataset", 0, ())] + [("dataset", n, (n - 1,)) for n in range(1, depth)]
    with index_from(tmp_path / "index.sqlite", records, revoked={0}) as index:
        graph = lineage(index, h(depth - 1), "up")
        assert len([n for n in graph.nodes if n.kind == "dataset"]) == depth
        assert all(n.tainted for n in graph.nodes)
        assert LineageEdge(f"dataset:{h(1)}", f"dataset:{h(0)}", "wasDerivedFrom") in graph.edges

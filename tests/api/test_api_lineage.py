"""Lineage over HTTP: exact graphs up, down and both ways through a real flow (raw → clean →
model → anchored batch), taint after revocations, and the PROV-JSON export read back by the
independent ``prov`` package with the same counts."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
from fastapi.testclient import TestClient
from prov.model import (
    ProvActivity,
    ProvDerivation,
    ProvDocument,
    ProvEntity,
    ProvGeneration,
    ProvUsage,
)

from api.settings import Settings
from tests.api.conftest import SALES_CSV, assert_problem, authorized_client, train, upload

RAW_CSV = SALES_CSV + "300,400,7000\n250,,6500\n"
STEPS = [{"step": "drop_duplicates"}, {"step": "drop_missing"}]


class Shared(NamedTuple):
    client: TestClient
    flow: dict[str, Any]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """One flow for the tests that only read it."""
    data_dir = tmp_path_factory.mktemp("lineage") / "data"
    settings = Settings(data_dir=data_dir, anchor_interval=3600, anchor_batch_size=10_000)
    with authorized_client(settings) as client:
        yield Shared(client, build_flow(client))


@pytest.fixture
def flow(client: TestClient) -> dict[str, Any]:
    """A flow of its own, for the tests that revoke part of it."""
    return build_flow(client)


def build_flow(client: TestClient) -> dict[str, Any]:
    """raw → (transform) → clean → (training) → model → batch, with every node id."""
    raw = upload(client, RAW_CSV).json()
    clean = client.post(f"/v1/datasets/{raw['content_hash']}/derive", json={"steps": STEPS}).json()
    model = train(client, clean["content_hash"]).json()
    rows = {"rows": [{"x1": 150, "x2": 250}, {"x1": 10, "x2": 20}]}
    assert client.post(f"/v1/models/{model['model_hash']}/predict", json=rows).status_code == 200
    [batch] = client.post("/v1/anchor").json()["batches"]
    # the batch was anchored by the service's anchorer, not by a request that syncs the index:
    # asking for its lineage by id must find it all the same (and brings the index up to date)
    assert graph(client, batch["batch_id"], "up")["root"] == f"batch:{batch['batch_id']}"
    ids = {
        "raw": f"dataset:{raw['content_hash']}",
        "clean": f"dataset:{clean['content_hash']}",
        "transform": f"transform:{clean['transform_hash']}:{clean['content_hash']}",
        "training": f"training:{model['model_hash']}",
        "model": f"model:{model['model_hash']}",
        "batch": f"batch:{batch['batch_id']}",
    }
    return {"raw": raw, "clean": clean, "model": model, "batch": batch, "id": ids}


def edges_of(ids: dict[str, str], *names: str) -> set[tuple[str, str, str]]:
    every = {
        "clean": {
            (ids["clean"], ids["raw"], "wasDerivedFrom"),
            (ids["clean"], ids["transform"], "wasGeneratedBy"),
            (ids["transform"], ids["raw"], "used"),
        },
        "model": {
            (ids["model"], ids["clean"], "wasDerivedFrom"),
            (ids["model"], ids["training"], "wasGeneratedBy"),
            (ids["training"], ids["clean"], "used"),
        },
        "batch": {(ids["batch"], ids["model"], "wasDerivedFrom")},
    }
    return set().union(*(every[name] for name in names))


def graph(client: TestClient, record_hash: str, direction: str = "both") -> dict[str, Any]:
    response = client.get(f"/v1/lineage/{record_hash}", params={"direction": direction})
    assert response.status_code == 200, response.text
    return response.json()


def shape(g: dict[str, Any]) -> tuple[set[str], set[tuple[str, str, str]]]:
    nodes = {n["id"] for n in g["nodes"]}
    edges = {(e["source"], e["target"], e["relation"]) for e in g["edges"]}
    return nodes, edges


def test_up_from_the_model_is_its_whole_history(shared: Shared) -> None:
    client, flow = shared
    ids = flow["id"]
    g = graph(client, flow["model"]["model_hash"], "up")
    assert g["root"] == ids["model"] and g["direction"] == "up"
    nodes, edges = shape(g)
    assert nodes == {ids[k] for k in ("raw", "clean", "transform", "training", "model")}
    assert edges == edges_of(ids, "clean", "model")
    by_id = {n["id"]: n for n in g["nodes"]}
    assert {by_id[i]["kind"] for i in nodes} == {"dataset", "transform", "training", "model"}
    assert by_id[ids["raw"]]["hash"] == flow["raw"]["content_hash"]
    assert by_id[ids["raw"]]["tx_hash"] == flow["raw"]["tx_hash"]
    assert by_id[ids["raw"]]["block_number"] == flow["raw"]["block_number"]
    assert by_id[ids["transform"]]["hash"] == flow["clean"]["transform_hash"]
    assert by_id[ids["training"]]["hash"] == flow["model"]["metadata_hash"]
    assert not any(n["revoked"] or n["tainted"] for n in g["nodes"])


def test_down_from_the_raw_data_reaches_the_predictions(shared: Shared) -> None:
    client, flow = shared
    ids = flow["id"]
    nodes, edges = shape(graph(client, flow["raw"]["content_hash"], "down"))
    assert nodes == set(ids.values())
    assert edges == edges_of(ids, "clean", "model", "batch")


@pytest.mark.parametrize(
    ("start", "direction", "expected_nodes", "expected_edges"),
    [
        ("clean", "both", ["raw", "clean", "transform", "training", "model", "batch"],
         ["clean", "model", "batch"]),
        ("batch", "up", ["raw", "clean", "transform", "training", "model", "batch"],
         ["clean", "model", "batch"]),
        ("batch", "down", ["batch"], []),
        ("model", "down", ["model", "batch"], ["batch"]),
        ("raw", "up", ["raw"], []),
        ("clean", "up", ["raw", "clean", "transform"], ["clean"]),
    ],
)  # fmt: skip
def test_graph_by_start_and_direction(
    shared: Shared,
    start: str,
    direction: str,
    expected_nodes: list[str],
    expected_edges: list[str],
) -> None:
    client, flow = shared
    ids = flow["id"]
    record_hash = ids[start].split(":")[1]
    nodes, edges = shape(graph(client, record_hash, direction))
    assert nodes == {ids[n] for n in expected_nodes}
    assert edges == (edges_of(ids, *expected_edges) if expected_edges else set())


def test_the_default_direction_is_both(shared: Shared) -> None:
    client, flow = shared
    clean = flow["clean"]["content_hash"]
    assert client.get(f"/v1/lineage/{clean}").json() == graph(client, clean, "both")


def test_revoking_the_raw_data_taints_everything_built_on_it(
    client: TestClient, flow: dict[str, Any]
) -> None:
    ids = flow["id"]
    revoked = client.post(
        f"/v1/records/{flow['raw']['content_hash']}/revoke", json={"reason": "unlawful"}
    )
    assert revoked.status_code == 200, revoked.text
    g = graph(client, flow["raw"]["content_hash"], "down")
    by_id = {n["id"]: n for n in g["nodes"]}
    assert by_id[ids["raw"]]["revoked"] is True
    assert by_id[ids["raw"]]["revoked_reason"] == "unlawful"
    assert all(n["tainted"] for n in g["nodes"])
    assert [n["id"] for n in g["nodes"] if n["revoked"]] == [ids["raw"]]
    # a graph that does not show the revoked record still knows it is tainted
    model_down = graph(client, flow["model"]["model_hash"], "down")
    assert all(n["tainted"] and not n["revoked"] for n in model_down["nodes"])


def test_revoking_the_model_taints_only_what_is_downstream(
    client: TestClient, flow: dict[str, Any]
) -> None:
    ids = flow["id"]
    model = flow["model"]["model_hash"]
    assert client.post(f"/v1/records/{model}/revoke", json={"reason": "biased"}).status_code == 200
    by_id = {n["id"]: n for n in graph(client, flow["clean"]["content_hash"])["nodes"]}
    tainted = {node_id for node_id, node in by_id.items() if node["tainted"]}
    assert tainted == {ids["model"], ids["batch"]}
    assert by_id[ids["model"]]["revoked"] and not by_id[ids["batch"]]["revoked"]


def test_prov_export_reads_back_with_the_graph_counts(
    client: TestClient, flow: dict[str, Any]
) -> None:
    clean = flow["clean"]["content_hash"]
    assert client.post(f"/v1/records/{clean}/revoke", json={"reason": "stale"}).status_code == 200
    for direction in ("up", "down", "both"):
        check_prov_export(client, flow, clean, direction)


def check_prov_export(client: TestClient, flow: dict[str, Any], clean: str, direction: str) -> None:
    g = graph(client, clean, direction)
    response = client.get(f"/v1/lineage/{clean}", params={"direction": direction, "format": "prov"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    document = ProvDocument.deserialize(content=response.text, format="json")

    kinds = Counter(n["kind"] for n in g["nodes"])
    relations = Counter(e["relation"] for e in g["edges"])
    entities = list(document.get_records(ProvEntity))
    activities = list(document.get_records(ProvActivity))
    assert len(entities) == kinds["dataset"] + kinds["model"] + kinds["batch"]
    assert len(activities) == kinds["transform"] + kinds["training"]
    assert len(list(document.get_records(ProvDerivation))) == relations["wasDerivedFrom"]
    assert len(list(document.get_records(ProvGeneration))) == relations["wasGeneratedBy"]
    assert len(list(document.get_records(ProvUsage))) == relations["used"]
    # the same identifiers, under the ledger namespace
    assert {r.identifier.localpart for r in [*entities, *activities]} == {
        n["id"] for n in g["nodes"]
    }
    for record in [*entities, *activities]:
        assert record.identifier.namespace.uri == "urn:provenance-ledger:"
    # revocation and taint survive the round trip
    revoked = {
        str(e.identifier.localpart)
        for e in entities
        if any(str(k) == "ledger:revoked" and v is True for k, v in e.attributes)
    }
    assert revoked == {flow["id"]["clean"]}
    # and the reader writes back a document with the same records
    again = ProvDocument.deserialize(content=document.serialize(format="json"), format="json")
    assert again == document


def test_prov_via_the_json_body_is_plain_json(shared: Shared) -> None:
    client, flow = shared
    model = flow["model"]["model_hash"]
    prov = client.get(f"/v1/lineage/{model}", params={"format": "prov", "direction": "up"}).json()
    assert prov["prefix"] == {"ledger": "urn:provenance-ledger:"}
    assert set(prov) >= {"entity", "activity", "wasDerivedFrom", "wasGeneratedBy", "used"}
    assert json.loads(json.dumps(prov)) == prov


def test_unknown_record_is_404(shared: Shared) -> None:
    client = shared.client
    unknown = "0x" + "12" * 32
    body = assert_problem(client.get(f"/v1/lineage/{unknown}"), 404, "unknown-record")
    assert unknown in body["detail"]
    assert_problem(client.get(f"/v1/lineage/{unknown}?format=prov"), 404, "unknown-record")


@pytest.mark.parametrize(
    ("query", "where"),
    [
        ("direction=sideways", ["query", "direction"]),
        ("format=xml", ["query", "format"]),
    ],
)
def test_bad_query_is_422(shared: Shared, query: str, where: list[str]) -> None:
    dataset = shared.flow["raw"]["content_hash"]
    response = shared.client.get(f"/v1/lineage/{dataset}?{query}")
    body = assert_problem(response, 422, "invalid-request")
    assert body["errors"][0]["loc"] == where


def test_malformed_hash_is_422(shared: Shared) -> None:
    client = shared.client
    body = assert_problem(client.get("/v1/lineage/0xdeadbeef"), 422, "invalid-request")
    assert body["errors"][0]["loc"] == ["path", "record_hash"]

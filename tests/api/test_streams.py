"""Streams over HTTP: definitions, ingest (JSON array, JSON lines), dead letters, seals into
chunks and versions (by count, by time, on demand), and a reading's proof checked with our
Merkle code, with the npm ``@openzeppelin/merkle-tree`` and against the chain's own records.

One service for the module (a chain start is the cost): each test uses its own stream. That
shared service is why the module runs past 400 lines.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.settings import Settings
from api.streaming.rows import CHUNK_LEAF_ENCODING
from ledger.formats.merkle import StandardMerkleTree, leaf_hash, verify_proof
from ml.hashing import canonical_json, sha256_bytes, to_hex
from tests.api.conftest import assert_problem, authorized_client
from tests.ledger._merkle_js import MERKLE_TREE_JS, js_json, run_js

VERIFY_JS = Path(__file__).resolve().parents[1] / "ledger" / "js" / "verify_proofs.mjs"

COLUMNS = [
    {"name": "machine", "type": "string"},
    {"name": "temperature", "type": "float"},
    {"name": "vibration", "type": "integer"},
    {"name": "alarm", "type": "boolean"},
]


def reading(i: int, **overrides: Any) -> dict[str, Any]:
    return {
        "id": f"r{i}",
        "machine": f"m-{i % 3}",
        "temperature": 60.0 + i / 4,
        "vibration": i * 10,
        "alarm": i % 5 == 0,
        **overrides,
    }


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("streams") / "data"
    settings = Settings(data_dir=data, anchor_interval=3600, anchor_batch_size=10_000)
    with authorized_client(settings) as client:
        yield client


def make_stream(api: TestClient, name: str, **rules: Any) -> dict[str, Any]:
    body = {"name": name, "columns": COLUMNS, "seal_readings": 1000, "seal_seconds": 3600}
    response = api.post("/v1/streams", json={**body, **rules})
    assert response.status_code == 201, response.text
    return response.json()


def send(api: TestClient, name: str, readings: list[Any]) -> dict[str, Any]:
    response = api.post(f"/v1/streams/{name}/readings", json=readings)
    assert response.status_code == 202, response.text
    return response.json()


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_define_a_stream_once(api: TestClient) -> None:
    created = make_stream(api, "line3")
    assert created["readings"] == 0 and created["versions"] == 0
    assert created["columns"] == COLUMNS
    again = api.post(
        "/v1/streams",
        json={"name": "line3", "columns": COLUMNS, "seal_readings": 1000, "seal_seconds": 3600},
    )
    assert again.status_code == 200 and again.json()["created_at"] == created["created_at"]
    other = api.post("/v1/streams", json={"name": "line3", "columns": COLUMNS[:2]})
    assert_problem(other, 409, "stream-exists")
    listed = api.get("/v1/streams").json()
    assert "line3" in [s["name"] for s in listed["data"]] and listed["count"] >= 1
    assert api.get("/v1/streams/line3").json()["name"] == "line3"
    assert_problem(api.get("/v1/streams/nope"), 404, "unknown-stream")


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        ({"name": "s", "columns": [{"name": "received_at", "type": "integer"}]}, 422,
         "invalid-stream"),
        ({"name": "s", "columns": [{"name": "id", "type": "string"}]}, 422, "invalid-stream"),
        ({"name": "s", "columns": [{"name": "a b", "type": "string"}]}, 422, "invalid-stream"),
        ({"name": "s", "columns": [{"name": "a", "type": "integer"},
                                   {"name": "a", "type": "float"}]}, 422, "invalid-stream"),
        ({"name": "s", "columns": [{"name": "a", "type": "complex"}]}, 422, "invalid-request"),
        ({"name": "s", "columns": []}, 422, "invalid-request"),
        ({"name": "a/b", "columns": COLUMNS}, 422, "invalid-request"),
        ({"name": "s", "columns": COLUMNS, "seal_readings": 0}, 422, "invalid-request"),
        ({"name": "s", "columns": COLUMNS, "seal_seconds": 0}, 422, "invalid-request"),
        ({"name": "s", "columns": COLUMNS, "extra": 1}, 422, "invalid-request"),
    ],
)  # fmt: skip
def test_a_bad_definition_is_refused_and_changes_nothing(
    api: TestClient, body: dict[str, Any], status: int, slug: str
) -> None:
    assert_problem(api.post("/v1/streams", json=body), status, slug)
    assert_problem(api.get("/v1/streams/s"), 404, "unknown-stream")


def test_ingest_stores_good_readings_and_dead_letters_the_bad(api: TestClient) -> None:
    make_stream(api, "ingest")
    answer = send(
        api,
        "ingest",
        [
            reading(1),
            reading(2, temperature="hot"),  # wrong type
            {k: v for k, v in reading(3).items() if k != "vibration"},  # missing column
            reading(4, pressure=1.0),  # unknown column
            reading(5, vibration=1.5),  # a float is not an integer
            reading(6, alarm=None),  # null
            reading(7, machine=""),  # empty string reads back as missing
            reading(1),  # the same id again: stored once
            "not an object",
            reading(8, temperature=12),  # an integer is a fine float
        ],
    )
    assert answer["accepted"] == 2 and answer["duplicates"] == 1
    assert answer["dead_letters"] == 7
    reasons = {r["index"]: r["reason"] for r in answer["refused"]}
    assert set(reasons) == {1, 2, 3, 4, 5, 6, 8}
    assert "temperature" in reasons[1] and "vibration" in reasons[2]
    assert "pressure" in reasons[3] and "null" in reasons[5]
    lines = "\n".join([json.dumps(reading(9)), "{not json", "", json.dumps(reading(10))])
    answer = api.post(
        "/v1/streams/ingest/readings",
        content=lines.encode(),
        headers={"Content-Type": "application/x-ndjson"},
    ).json()
    assert (answer["accepted"], answer["dead_letters"]) == (2, 1)
    assert answer["refused"][0]["index"] == 1 and "not JSON" in answer["refused"][0]["reason"]
    dead = api.get("/v1/streams/ingest/dead-letters").json()
    assert dead["count"] == 8
    assert dead["data"][0]["payload"] == "{not json" and dead["data"][0]["source"] == "http"
    stream = api.get("/v1/streams/ingest").json()
    assert (stream["readings"], stream["pending"], stream["dead_letters"]) == (4, 4, 8)
    assert stream["rate"] > 0 and stream["last_received"] is not None


@pytest.mark.parametrize(
    ("content", "status", "slug"),
    [
        (b'[{"machine": ', 422, "malformed-readings"),
        (b"", 422, "malformed-readings"),
        (b"\xff\xfe", 422, "malformed-readings"),
        (b"[" * 100 + b"]" * 100, 422, "too-deep"),
    ],
)
def test_a_body_that_is_not_readings_stores_nothing(
    api: TestClient, content: bytes, status: int, slug: str
) -> None:
    if api.get("/v1/streams/bodies").status_code == 404:
        make_stream(api, "bodies")
    before = api.get("/v1/streams/bodies").json()
    response = api.post(
        "/v1/streams/bodies/readings",
        content=content,
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, status, slug)
    after = api.get("/v1/streams/bodies").json()
    assert (after["readings"], after["dead_letters"]) == (
        before["readings"],
        before["dead_letters"],
    )
    assert_problem(api.post("/v1/streams/nope/readings", json=[reading(1)]), 404, "unknown-stream")


def test_seal_makes_chunks_and_versions_that_are_datasets(api: TestClient) -> None:
    make_stream(api, "sealed")
    send(api, "sealed", [reading(i) for i in range(5)])
    assert api.post("/v1/streams/sealed/seal").json()["count"] == 1
    assert api.post("/v1/streams/sealed/seal").json() == {"data": [], "count": 0}
    send(api, "sealed", [reading(i) for i in range(5, 8)])
    [v2] = api.post("/v1/streams/sealed/seal").json()["data"]
    versions = api.get("/v1/streams/sealed/versions").json()
    assert versions["count"] == 2 and versions["data"][0] == v2
    v1 = versions["data"][1]
    assert (v1["number"], v1["readings"], v1["previous"]) == (1, 5, None)
    assert (v2["number"], v2["readings"], v2["previous"]) == (2, 8, v1["hash"])
    assert v2["chunks"] == [v1["chunk"]["hash"], v2["chunk"]["hash"]]
    assert v2["chunk"]["first_row"] == 5 and v2["chunk"]["readings"] == 3

    chunk = api.get(f"/v1/datasets/{v2['chunk']['hash']}").json()
    assert chunk["row_count"] == 3 and chunk["parents"] == []
    content = api.get(f"/v1/datasets/{v2['chunk']['hash']}/content").content
    assert to_hex(sha256_bytes(content)) == v2["chunk"]["hash"]
    header, first, *_ = content.decode().splitlines()
    assert header == "received_at,machine,temperature,vibration,alarm"
    assert first.split(",")[1:] == ["m-2", "61.25", "50", "true"]

    version = api.get(f"/v1/datasets/{v2['hash']}").json()
    assert version["parents"] == [v1["hash"], v2["chunk"]["hash"]]
    first_chunk = api.get(f"/v1/datasets/{v1['chunk']['hash']}/content").content
    assert version["size"] == len(first_chunk) + len(content)  # its chunks' files
    # one transaction a seal: the chunk, then the version that names it
    assert version["tx_hash"] == chunk["tx_hash"]
    assert (version["row_count"], version["rows_root"]) == (8, v2["rows_root"])
    assert version["transform"]["transform"] == "stream-append"
    manifest = json.loads(api.get(f"/v1/datasets/{v2['hash']}/content").content)
    assert (manifest["previous"], manifest["chunk"]) == (v1["hash"], v2["chunk"]["hash"])
    # a version's content is its manifest: file operations say what works instead
    refused = api.get(f"/v1/datasets/{v2['hash']}/rows/0/proof")
    assert (
        "/v1/streams/sealed/readings/"
        in assert_problem(refused, 422, "stream-version-rows")["detail"]
    )
    derive = api.post(
        f"/v1/datasets/{v2['hash']}/derive", json={"steps": [{"step": "drop_missing"}]}
    )
    assert_problem(derive, 422, "stream-version-rows")
    stream = api.get("/v1/streams/sealed").json()
    assert stream["latest_version"] == v2["hash"] and stream["pending"] == 0
    assert stream["last_seal"] is not None


def test_seal_takes_wait_on_the_embedded_chain(api: TestClient) -> None:
    """accepted is answered final here, as on every route; included answers in the block."""
    make_stream(api, "waited")
    send(api, "waited", [reading(i) for i in range(2)])
    assert api.post("/v1/streams/waited/seal?wait=accepted").json()["count"] == 1
    send(api, "waited", [reading(i) for i in range(2, 4)])
    [v2] = api.post("/v1/streams/waited/seal?wait=included").json()["data"]
    assert (v2["number"], v2["readings"]) == (2, 4)
    assert api.get(f"/v1/datasets/{v2['hash']}").status_code == 200


def test_seals_by_count_and_by_time(api: TestClient) -> None:
    make_stream(api, "counted", seal_readings=3, seal_seconds=3600)
    send(api, "counted", [reading(i) for i in range(7)])
    versions = wait_for(
        lambda: (v := api.get("/v1/streams/counted/versions").json())["count"] == 2 and v,
        "two seals of three readings",
    )
    assert [v["readings"] for v in versions["data"]] == [6, 3]
    assert api.get("/v1/streams/counted").json()["pending"] == 1

    make_stream(api, "timed", seal_readings=1000, seal_seconds=0.3)
    send(api, "timed", [reading(1)])
    wait_for(lambda: api.get("/v1/streams/timed").json()["versions"] == 1, "a timed seal")


def test_a_readings_proof_verifies_off_chain_and_on_chain(api: TestClient) -> None:
    make_stream(api, "proved")
    send(api, "proved", [reading(i) for i in range(4)])
    assert_problem(api.get("/v1/streams/proved/readings/r2/proof"), 409, "reading-not-sealed")
    api.post("/v1/streams/proved/seal")
    send(api, "proved", [reading(i) for i in range(4, 9)])
    [v2] = api.post("/v1/streams/proved/seal").json()["data"]
    [v1] = api.get("/v1/streams/proved/versions?offset=1").json()["data"]
    proofs = [api.get(f"/v1/streams/proved/readings/r{i}/proof").json() for i in (2, 6)]
    for proof, chunk_index, row in ((proofs[0], 0, 2), (proofs[1], 1, 2)):
        assert proof["version"] == v2["hash"] and proof["index"] == row
        assert proof["row"][1:] == [reading(row + 4 * chunk_index)[c["name"]] for c in COLUMNS]
        digest = sha256_bytes(canonical_json(proof["row"]))
        assert to_hex(digest) == proof["row_digest"]
        leaf = leaf_hash(proof["leaf_encoding"], [proof["index"], digest])
        assert verify_proof(proof["root"], leaf, proof["proof"])
        chunk_leaf = leaf_hash(proof["chunk_leaf_encoding"], proof["chunk_leaf"])
        assert to_hex(chunk_leaf) == proof["chunk_leaf_hash"]
        assert proof["chunk_leaf"][:2] == [chunk_index, proof["chunk"]]
        assert verify_proof(proof["version_root"], chunk_leaf, proof["chunk_proof"])
        # the roots are the chain's: read the records from the contract itself
        client = api.app.state.service.core.client  # type: ignore[attr-defined]
        assert client.dataset_registration(proof["chunk"]).rows_root == proof["root"]
        on_chain = client.dataset_registration(proof["version"])
        assert on_chain.rows_root == proof["version_root"]
        assert on_chain.row_count == 9 and on_chain.parents[1] == proofs[1]["chunk"]
    # an earlier version proves the readings it holds, and says so for the others
    old = api.get(f"/v1/streams/proved/readings/r2/proof?version={v1['hash']}").json()
    assert old["version_root"] == v1["rows_root"] and old["chunk"] == proofs[0]["chunk"]
    later = api.get(f"/v1/streams/proved/readings/r6/proof?version={v1['hash']}")
    assert_problem(later, 409, "reading-not-sealed")
    assert_problem(api.get("/v1/streams/proved/readings/zz/proof"), 404, "unknown-stream-reading")
    # the npm reference library builds the same version tree and accepts both proofs
    leaves = [
        api.get(f"/v1/streams/proved/readings/r{i}/proof").json()["chunk_leaf"] for i in (0, 8)
    ]
    encoding = proofs[1]["chunk_leaf_encoding"]
    [tree] = run_js(
        MERKLE_TREE_JS, [{"op": "of", "values": js_json(leaves), "leafEncoding": encoding}]
    )
    assert tree["root"] == proofs[1]["version_root"]
    assert tree["proofs"][1] == proofs[1]["chunk_proof"]
    jobs = []
    for proof in proofs:
        digest = proof["row_digest"]
        jobs.append(
            {
                "root": proof["root"],
                "leafEncoding": proof["leaf_encoding"],
                "value": [str(proof["index"]), digest],
                "proof": proof["proof"],
            }
        )
        jobs.append(
            {
                "root": proof["version_root"],
                "leafEncoding": encoding,
                "value": js_json(proof["chunk_leaf"]),
                "proof": proof["chunk_proof"],
            }
        )
    forged = dict(jobs[0], value=[str(proofs[0]["index"] + 1), proofs[0]["row_digest"]])
    results = run_js(VERIFY_JS, [*jobs, forged])
    assert [r["ok"] for r in results] == [True, True, True, True, False], results


def test_train_on_a_version_and_revoke_a_chunk(api: TestClient) -> None:
    make_stream(api, "trained")
    send(api, "trained", [reading(i) for i in range(6)])
    api.post("/v1/streams/trained/seal")
    send(api, "trained", [reading(i) for i in range(6, 12)])
    [v2] = api.post("/v1/streams/trained/seal").json()["data"]
    body = {"dataset": v2["hash"], "algorithm": "linear_regression", "target": "temperature"}
    response = api.post("/v1/models", json={**body, "test_size": 0})
    assert response.status_code == 201, response.text
    model = response.json()
    assert model["datasets"] == [v2["hash"]]
    metadata = model["metadata"]
    assert metadata["features"] == ["vibration", "alarm"]  # never the arrival time
    assert metadata["datasets"][0]["row_count"] == 12
    facts = metadata["stream"]
    assert (facts["stream"], facts["version"], facts["readings"]) == ("trained", v2["hash"], 12)
    [v1] = api.get("/v1/streams/trained/versions?offset=1").json()["data"]
    assert facts["first_received"] == v1["chunk"]["first_received"]
    assert facts["last_received"] == v2["chunk"]["last_received"]
    report = api.get(f"/v1/verify/models/{model['model_hash']}?retrain=true").json()
    assert report["verdict"] == "valid", report
    assert {c["name"]: c["ok"] for c in report["checks"]}["reproducible"] is True, report
    lineage = api.get(f"/v1/lineage/{model['model_hash']}?direction=up").json()
    up = {n["id"] for n in lineage["nodes"]}
    assert {f"dataset:{h}" for h in (v1["hash"], v2["hash"], v1["chunk"]["hash"])} <= up

    revoked = api.post(f"/v1/records/{v1['chunk']['hash']}/revoke", json={"reason": "bad probe"})
    assert revoked.status_code == 200, revoked.text
    assert api.get(f"/v1/models/{model['model_hash']}").json()["tainted"] is True
    report = api.get(f"/v1/verify/models/{model['model_hash']}").json()
    assert report["verdict"] == "invalid"
    down = api.get(f"/v1/lineage/{v1['chunk']['hash']}?direction=down").json()
    below = {n["id"] for n in down["nodes"]}
    assert {
        f"dataset:{v1['hash']}",
        f"dataset:{v2['hash']}",
        f"model:{model['model_hash']}",
    } <= below
    assert all(n["tainted"] or n["revoked"] for n in down["nodes"])


def test_a_stream_whose_version_is_revoked_says_why_it_cannot_seal(api: TestClient) -> None:
    make_stream(api, "stuck")
    send(api, "stuck", [reading(i) for i in range(3)])
    [v1] = api.post("/v1/streams/stuck/seal").json()["data"]
    assert api.post(f"/v1/records/{v1['hash']}/revoke", json={"reason": "bad"}).status_code == 200
    send(api, "stuck", [reading(i) for i in range(3, 5)])
    # nothing new is built on revoked data; the readings stay stored, waiting
    assert_problem(api.post("/v1/streams/stuck/seal"), 409, "record-revoked")
    make_stream(api, "stuck-timed", seal_seconds=0.2)
    send(api, "stuck-timed", [reading(1)])
    api.post("/v1/streams/stuck-timed/seal")
    [v] = api.get("/v1/streams/stuck-timed/versions").json()["data"]
    assert api.post(f"/v1/records/{v['hash']}/revoke", json={"reason": "bad"}).status_code == 200
    send(api, "stuck-timed", [reading(2)])
    stream = wait_for(
        lambda: (s := api.get("/v1/streams/stuck-timed").json())["seal_error"] and s,
        "the sealer to report the failure",
    )
    assert "revoked" in stream["seal_error"] and stream["pending"] == 1
    # the other streams still seal
    make_stream(api, "unstuck", seal_seconds=0.2)
    send(api, "unstuck", [reading(1)])
    wait_for(lambda: api.get("/v1/streams/unstuck").json()["versions"] == 1, "another stream")


def test_every_version_is_the_tree_of_all_its_chunks_across_a_restart(tmp_path: Path) -> None:
    """The sealer keeps what the next version needs of the chunks before it (their leaves'
    hashes, their files' size, the first reading's time) rather than reading every chunk again
    each seal; a restart starts from the store. Either way each version must be exactly what
    all its chunks make."""
    settings = Settings(data_dir=tmp_path / "data", anchor_interval=3600)
    sent = 0

    def seal_twice(api: TestClient) -> None:
        nonlocal sent
        for size in (2, 3):
            send(api, "grown", [reading(i) for i in range(sent, sent + size)])
            sent += size
            assert api.post("/v1/streams/grown/seal").json()["count"] == 1

    with authorized_client(settings) as api:
        make_stream(api, "grown")
        seal_twice(api)
    with authorized_client(settings) as api:  # started again: nothing kept in memory
        seal_twice(api)
        listed = api.get("/v1/streams/grown/versions").json()["data"]
        # a page is the same versions, read from one look at the chunks up to its newest
        page = api.get("/v1/streams/grown/versions?offset=1&limit=2").json()["data"]
        assert [v["number"] for v in page] == [3, 2] and page == listed[1:3]
        versions = listed[::-1]
        chunks = [v["chunk"] for v in versions]
        sizes = [len(api.get(f"/v1/datasets/{c['hash']}/content").content) for c in chunks]
        for k, version in enumerate(versions, start=1):
            leaves = [
                (i, c["hash"], c["rows_root"], c["first_row"], c["readings"])
                for i, c in enumerate(chunks[:k])
            ]
            root = to_hex(StandardMerkleTree.of(leaves, CHUNK_LEAF_ENCODING).root)
            record = api.get(f"/v1/datasets/{version['hash']}").json()
            assert version["rows_root"] == record["rows_root"] == root, k
            readings = chunks[k - 1]["first_row"] + chunks[k - 1]["readings"]
            assert (record["row_count"], record["size"]) == (readings, sum(sizes[:k])), k
            stored = api.app.state.service.core.store.read_bytes(record["metadata_hash"])
            assert json.loads(stored)["first_received"] == chunks[0]["first_received"], k

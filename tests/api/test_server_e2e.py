"""End to end through a real server process: ``provenance serve`` on a loopback port, driven over
HTTP with httpx (no TestClient), through register → derive → train → predict → lineage, then
every record it created is read back from the same running process, which is then stopped."""

from __future__ import annotations

import hashlib
import signal
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from prov.model import ProvDocument

from api.devserver import ServiceProcess
from ledger.formats.merkle import verify_proof

RAW_CSV = (
    "x1,x2,y\n"
    "100,200,5000\n"
    "200,300,6000\n"
    "300,400,7000\n"
    "300,400,7000\n"  # a duplicate
    "250,,6500\n"  # a gap
)
STEPS = [{"step": "drop_duplicates"}, {"step": "drop_missing"}]
PROBLEM = "urn:provenance-ledger:problem:"
UPLOAD_LIMIT = 100_000


@contextmanager
def serve(data_dir: Path, *, env: dict[str, str] | None = None) -> Iterator[str]:
    """``provenance serve`` on a free loopback port until the block ends; yields its base URL.

    On the way out the server gets SIGTERM and must shut down cleanly (the app's lifespan closes
    the chain); its log is kept next to the data directory and shown if anything fails.
    """
    server = ServiceProcess(data_dir, env=env)
    try:
        yield server.url
    except BaseException:
        print(f"server log {server.log_path}:\n{server.log_tail(100_000)}")  # with the failure
        raise
    finally:
        status = server.stop(grace=60)
    log_text = server.log_tail(1_000_000)
    assert status in (0, -signal.SIGTERM), log_text
    assert "Application shutdown complete" in log_text, log_text
    assert "Traceback" not in log_text, log_text


def fixed(record: dict) -> dict:
    """A record's view without its confirmations, which grow with every block."""
    return {k: v for k, v in record.items() if k != "confirmations"}


def admin_headers(data_dir: Path) -> dict[str, str]:
    """The admin key the service wrote on first start, if this version has keys."""
    key_file = data_dir / "admin.key"
    return {"Authorization": f"Bearer {key_file.read_text().strip()}"} if key_file.exists() else {}


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.request.url}: {response.text}"
    return response.json()


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["type"] == PROBLEM + slug, body
    assert "Traceback" not in response.text
    return body


def test_the_whole_flow_through_a_real_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = {
        "PROVENANCE_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
        "PROVENANCE_ANCHOR_INTERVAL": "3600",  # receipts are anchored when the test says so
    }
    with serve(data_dir, env=settings) as base_url:
        headers = admin_headers(data_dir)
        with httpx.Client(base_url=base_url, headers=headers, timeout=60) as api:
            created = _drive_the_flow(api)
            _read_everything_back(api, created)
            _errors_over_the_wire(api, base_url, created)
    # the data outlives the process: the chain file and the store are there
    assert (data_dir / "chain").is_dir()
    assert any((data_dir / "artifacts" / "sha256").rglob("*"))


def _drive_the_flow(api: httpx.Client) -> dict[str, Any]:
    assert ok(api.get("/healthz"))["status"] == "ok"
    start = ok(api.get("/v1/chain"))["latest_block"]

    # 1. register
    raw = ok(
        api.post("/v1/datasets", files={"file": ("sales.csv", RAW_CSV)}, data={"name": "sales"}),
        201,
    )
    assert raw["content_hash"] == "0x" + hashlib.sha256(RAW_CSV.encode()).hexdigest()
    assert raw["row_count"] == 5 and raw["name"] == "sales"
    again = api.post("/v1/datasets", files={"file": ("copy.csv", RAW_CSV)})
    assert fixed(ok(again)) == fixed(raw)  # 200, the same record, no transaction

    # 2. derive
    clean = ok(api.post(f"/v1/datasets/{raw['content_hash']}/derive", json={"steps": STEPS}), 201)
    assert clean["parents"] == [raw["content_hash"]] and clean["row_count"] == 3

    # 3. train
    request = {
        "dataset": clean["content_hash"],
        "algorithm": "linear_regression",
        "target": "y",
        "test_size": 0,
        "seed": 0,
    }
    model = ok(api.post("/v1/models", json=request), 201)
    assert model["datasets"] == [clean["content_hash"]]
    assert fixed(ok(api.post("/v1/models", json=request))) == fixed(model)  # 200, no tx

    # 4. predict
    rows = [{"x1": 150, "x2": 250}, {"x1": 250, "x2": 350}]
    predicted = ok(api.post(f"/v1/models/{model['model_hash']}/predict", json={"rows": rows}))
    assert predicted["predictions"] == [5500.0, 6500.0]
    assert len(predicted["receipts"]) == 2

    # 5. lineage
    graph = ok(api.get(f"/v1/lineage/{model['model_hash']}", params={"direction": "up"}))
    assert Counter(n["kind"] for n in graph["nodes"]) == {
        "dataset": 2,
        "transform": 1,
        "training": 1,
        "model": 1,
    }
    assert len(graph["edges"]) == 6

    # three transactions: register, derive, train; the duplicates sent none
    assert ok(api.get("/v1/chain"))["latest_block"] == start + 3

    # 6. anchor the receipts: one batch, which joins the model's lineage
    [batch] = ok(api.post("/v1/anchor"))["batches"]
    assert batch["model_hash"] == model["model_hash"] and batch["count"] == 2
    for receipt in predicted["receipts"]:
        assert ok(api.get(f"/v1/receipts/{receipt['receipt_id']}"))["status"] == "anchored"
    batch_graph = ok(api.get(f"/v1/lineage/{batch['batch_id']}", params={"direction": "up"}))
    assert {n["id"] for n in batch_graph["nodes"]} == {
        *(n["id"] for n in graph["nodes"]),
        f"batch:{batch['batch_id']}",
    }
    return {
        "raw": raw,
        "clean": clean,
        "model": model,
        "predicted": predicted,
        "graph": graph,
        "batch": batch,
    }


def _read_everything_back(api: httpx.Client, created: dict[str, Any]) -> None:
    raw, clean, model = created["raw"], created["clean"], created["model"]

    listed = ok(api.get("/v1/datasets"))
    assert listed["count"] == 2
    assert [d["content_hash"] for d in listed["data"]] == [
        clean["content_hash"],
        raw["content_hash"],
    ]
    for record in (raw, clean):
        content_hash = record["content_hash"]
        assert fixed(ok(api.get(f"/v1/datasets/{content_hash}"))) == fixed(record)
        content = api.get(f"/v1/datasets/{content_hash}/content")
        assert content.status_code == 200
        assert "0x" + hashlib.sha256(content.content).hexdigest() == content_hash
        for index in range(record["row_count"]):
            proof = ok(api.get(f"/v1/datasets/{content_hash}/rows/{index}/proof"))
            assert proof["root"] == record["rows_root"]
            assert verify_proof(record["rows_root"], proof["leaf"], proof["proof"])
    assert api.get(f"/v1/datasets/{raw['content_hash']}/content").content == RAW_CSV.encode()

    models = ok(api.get("/v1/models"))
    assert models["count"] == 1 and [fixed(m) for m in models["data"]] == [fixed(model)]
    assert fixed(ok(api.get(f"/v1/models/{model['model_hash']}"))) == fixed(model)
    model_file = api.get(f"/v1/models/{model['model_hash']}/content")
    assert "0x" + hashlib.sha256(model_file.content).hexdigest() == model["model_hash"]

    for receipt in created["predicted"]["receipts"]:
        stored = ok(api.get(f"/v1/receipts/{receipt['receipt_id']}"))
        assert stored["signature"] == receipt["signature"]

    down = ok(api.get(f"/v1/lineage/{raw['content_hash']}", params={"direction": "down"}))
    assert {n["id"] for n in down["nodes"]} == {
        *(n["id"] for n in created["graph"]["nodes"]),
        f"batch:{created['batch']['batch_id']}",
    }
    prov = api.get(
        f"/v1/lineage/{model['model_hash']}", params={"direction": "up", "format": "prov"}
    )
    document = ProvDocument.deserialize(content=prov.text, format="json")
    assert len(list(document.get_records())) == len(created["graph"]["nodes"]) + len(
        created["graph"]["edges"]
    )

    chain = ok(api.get("/v1/chain"))
    assert chain["indexed_block"] == chain["latest_block"]
    assert {raw["registrant"], clean["registrant"], model["registrant"]} == {chain["registrar"]}

    assert ok(api.get("/openapi.json"))["info"]["title"] == "Provenance Ledger"
    assert api.get("/docs").status_code == 200


def _errors_over_the_wire(api: httpx.Client, base_url: str, created: dict[str, Any]) -> None:
    unknown = "0x" + "00" * 31 + "01"
    problem(api.get(f"/v1/datasets/{unknown}"), 404, "unknown-dataset")
    problem(api.get(f"/v1/models/{unknown}/content"), 404, "unknown-model")
    problem(api.get("/v1/lineage/0x1234"), 422, "invalid-request")
    problem(
        api.post("/v1/datasets", files={"file": ("bad.csv", b"a,a\n1,2\n")}),
        422,
        "duplicate-columns",
    )
    model_hash = created["model"]["model_hash"]
    problem(
        api.post(f"/v1/models/{model_hash}/predict", json={"rows": [{"x1": 1}]}),
        422,
        "missing-feature",
    )
    # bodies whose size is only known as they stream in (chunked) are cut off at the limit:
    # by the store, just past max_upload_bytes, and by the server, before the whole body is read
    for megabytes in (0.5, 50):
        streamed = api.post(
            "/v1/datasets",
            content=_chunked_multipart(int(megabytes * 1024 * 1024)),
            headers={"content-type": "multipart/form-data; boundary=B"},
        )
        problem(streamed, 413, "too-large")
    assert ok(api.get("/v1/datasets"))["count"] == 2
    if api.headers.get("Authorization"):  # writes need a key; reads do not
        with httpx.Client(base_url=base_url, timeout=30) as anonymous:
            refused = anonymous.post(f"/v1/records/{model_hash}/revoke", json={"reason": "x"})
            assert refused.status_code == 401, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert fixed(ok(anonymous.get(f"/v1/models/{model_hash}"))) == fixed(created["model"])
    # revocation over the wire: the model stops predicting and its lineage shows the taint
    revoked = ok(api.post(f"/v1/records/{model_hash}/revoke", json={"reason": "e2e"}))
    assert revoked["revoked"] is True and revoked["revocation"]["reason"] == "e2e"
    problem(
        api.post(f"/v1/models/{model_hash}/predict", json={"rows": [{"x1": 1, "x2": 2}]}),
        409,
        "record-revoked",
    )
    up = ok(api.get(f"/v1/lineage/{model_hash}", params={"direction": "up"}))
    assert {n["id"] for n in up["nodes"] if n["tainted"]} == {f"model:{model_hash}"}
    # and the service is still there after all that
    assert ok(api.get("/healthz"))["status"] == "ok"


def _chunked_multipart(size: int) -> Iterator[bytes]:
    """A well-formed multipart upload of a ``size``-byte CSV, sent without a Content-Length."""
    yield (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\nx1,x2,y\n"
    )
    chunk = b"1,2,3\n" * 10_000
    for _ in range(size // len(chunk) + 1):
        yield chunk
    yield b"\r\n--B--\r\n"

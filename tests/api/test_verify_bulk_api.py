"""Bulk verification and batch export over HTTP: POST /v1/verify/receipts (and /file),
GET /v1/batches/{id}/receipts as pages and as JSON lines."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from api.settings import Settings
from tests.api.conftest import assert_problem, authorized_client, train, upload

ROWS = [{"x1": 100 + i, "x2": 200 + i} for i in range(5)]


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _model(client: TestClient) -> str:
    response = upload(client)
    assert response.status_code in (200, 201), response.text
    return _ok(train(client, response.json()["content_hash"]), 201)["model_hash"]


def _anchored_batch(client: TestClient) -> tuple[str, str, list[dict[str, Any]]]:
    """A model, and the batch id and anchored receipts of one prediction request."""
    model = _model(client)
    handed = _ok(client.post(f"/v1/models/{model}/predict", json={"rows": ROWS}))["receipts"]
    [batch] = _ok(client.post("/v1/anchor"))["batches"]
    page = _ok(client.get(f"/v1/batches/{batch['batch_id']}/receipts"))
    assert page["count"] == len(ROWS)
    assert [r["receipt_id"] for r in page["data"]] == [r["receipt_id"] for r in handed]
    return model, batch["batch_id"], page["data"]


def test_bulk_verification_reports_each_receipt_in_order(client: TestClient) -> None:
    model, _, anchored = _anchored_batch(client)
    for document in anchored:  # each page entry is exactly what GET /v1/receipts/{id} says
        assert _ok(client.get(f"/v1/receipts/{document['receipt_id']}")) == document
    [pending] = _ok(client.post(f"/v1/models/{model}/predict", json={"rows": ROWS[:1]}))["receipts"]
    tampered = {**anchored[1], "output": anchored[1]["output"] + 1}
    documents = [anchored[0], tampered, anchored[2], {"x": 1}, pending]
    body = _ok(client.post("/v1/verify/receipts", json={"receipts": documents}))
    assert body["summary"] == {"valid": 2, "invalid": 2, "pending": 1}
    reports = body["reports"]
    assert [r["verdict"] for r in reports] == ["valid", "invalid", "valid", "invalid", "pending"]
    assert [r["subject"] for r in reports] == [
        anchored[0]["receipt_id"], anchored[1]["receipt_id"], anchored[2]["receipt_id"], "#3",
        pending["receipt_id"],
    ]  # fmt: skip
    failed = [[c["name"] for c in r["checks"] if c["ok"] is False] for r in reports]
    assert failed[1] == ["output_hash"] and failed[3] == ["receipt_format"]
    # The same receipt, alone, gets the same report.
    single = _ok(client.post("/v1/verify/receipt", json={"receipt": anchored[0]}))
    assert single == reports[0]


def test_a_batch_exports_as_json_lines_that_verify_as_a_file(client: TestClient) -> None:
    _, batch_id, anchored = _anchored_batch(client)
    path = f"/v1/batches/{batch_id}/receipts"
    for response in (
        client.get(path, params={"format": "jsonl"}),
        client.get(path, headers={"Accept": "application/x-ndjson"}),
    ):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = response.text.splitlines()
        assert [json.loads(line) for line in lines] == anchored
    export = response.content
    body = _ok(client.post("/v1/verify/receipts/file", files={"file": ("b.jsonl", export)}))
    assert body["summary"] == {"valid": len(ROWS), "invalid": 0, "pending": 0}
    as_list = json.dumps({"receipts": anchored}).encode()
    body = _ok(client.post("/v1/verify/receipts/file", files={"file": ("b.json", as_list)}))
    assert body["summary"]["valid"] == len(ROWS)
    page = _ok(client.get(path, params={"offset": 3, "limit": 10}))
    assert page == {"data": anchored[3:], "count": len(ROWS)}


def test_unknown_batches_and_bad_files_are_problems(client: TestClient) -> None:
    unknown = f"/v1/batches/0x{'ab' * 32}/receipts"
    assert_problem(client.get(unknown), 404, "unknown-batch")
    assert_problem(client.get(unknown, params={"format": "jsonl"}), 404, "unknown-batch")
    assert_problem(
        client.post("/v1/verify/receipts/file", files={"file": ("x.json", b"{not json")}),
        422,
        "malformed-receipt",
    )
    assert_problem(
        client.post("/v1/verify/receipts", json={"receipts": []}), 422, "invalid-request"
    )


def test_more_receipts_than_the_limit_are_refused(settings: Settings) -> None:
    limited = settings.model_copy(update={"max_verify_receipts": 2})
    with authorized_client(limited) as client:
        _, _, anchored = _anchored_batch(client)
        response = client.post("/v1/verify/receipts", json={"receipts": anchored[:3]})
        body = assert_problem(response, 413, "too-large")
        assert body["limit"] == "max_verify_receipts"
        assert _ok(client.post("/v1/verify/receipts", json={"receipts": anchored[:2]}))[
            "summary"
        ] == {"valid": 2, "invalid": 0, "pending": 0}

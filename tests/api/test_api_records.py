"""Revocation over HTTP: any record (dataset, model, prediction batch) is revoked once, for good,
with a reason; the answer is the updated record, and everything built on it is then refused."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import SALES_CSV, assert_problem, train, upload

UNKNOWN = "0x" + "ef" * 32


def head(client: TestClient) -> int:
    return client.get("/v1/chain").json()["latest_block"]


def revoke(client: TestClient, record_hash: str, reason: str = "found a problem") -> Any:
    return client.post(f"/v1/records/{record_hash}/revoke", json={"reason": reason})


@pytest.fixture
def flow(client: TestClient) -> dict[str, str]:
    """A dataset, a model trained on it, and an anchored batch of that model's predictions."""
    dataset = upload(client, SALES_CSV).json()["content_hash"]
    model = train(client, dataset).json()["model_hash"]
    predicted = client.post(f"/v1/models/{model}/predict", json={"rows": [{"x1": 1, "x2": 2}]})
    assert predicted.status_code == 200, predicted.text
    anchored = client.post("/v1/anchor").json()["batches"]
    assert len(anchored) == 1 and anchored[0]["error"] is None, anchored
    return {"dataset": dataset, "model": model, "batch": anchored[0]["batch_id"]}


def test_revoking_a_dataset_answers_the_updated_record(
    client: TestClient, flow: dict[str, str]
) -> None:
    before = client.get(f"/v1/datasets/{flow['dataset']}").json()
    block = head(client)
    response = revoke(client, flow["dataset"], "contains personal data")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "dataset"
    assert body["revoked"] is True
    revocation = body["revocation"]
    assert revocation["reason"] == "contains personal data"
    assert revocation["revoker"] == client.get("/v1/chain").json()["registrar"]
    assert revocation["block_number"] == block + 1 == head(client)
    assert revocation["tx_hash"] != before["tx_hash"]
    # the registration itself is untouched: nothing is overwritten (its confirmations
    # never shrink: blocks mined meanwhile, the anchoring thread's too, may add to them)
    moving = ("kind", "revoked", "revocation", "confirmations")
    unchanged = {k: v for k, v in body.items() if k not in moving}
    assert unchanged == {k: v for k, v in before.items() if k not in moving}
    assert body["confirmations"] >= before["confirmations"]
    again = client.get(f"/v1/datasets/{flow['dataset']}").json()
    assert again["confirmations"] >= body["confirmations"]
    assert {k: v for k, v in again.items() if k != "confirmations"} == {
        k: v for k, v in body.items() if k not in ("kind", "confirmations")
    }


def test_revoking_a_model(client: TestClient, flow: dict[str, str]) -> None:
    body = revoke(client, flow["model"], "biased").json()
    assert body["kind"] == "model" and body["model_hash"] == flow["model"]
    assert body["revoked"] is True and body["revocation"]["reason"] == "biased"
    listed = client.get("/v1/models").json()["data"][0]
    assert listed["revoked"] is True and listed["revocation"] == body["revocation"]


def test_revoking_a_batch_anchored_a_moment_ago(client: TestClient, flow: dict[str, str]) -> None:
    response = revoke(client, flow["batch"], "wrong inputs")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "batch"
    assert body["root"] == flow["batch"] and body["model_hash"] == flow["model"]
    assert body["count"] == 1
    assert body["revoked"] is True and body["revocation"]["reason"] == "wrong inputs"


def test_a_revocation_happens_once(client: TestClient, flow: dict[str, str]) -> None:
    assert revoke(client, flow["model"]).status_code == 200
    block = head(client)
    body = assert_problem(revoke(client, flow["model"], "again"), 409, "already-revoked")
    assert flow["model"] in body["detail"]
    assert head(client) == block
    reason = client.get(f"/v1/models/{flow['model']}").json()["revocation"]["reason"]
    assert reason == "found a problem"  # the first reason stands


def test_revoking_an_unknown_record_is_404(client: TestClient) -> None:
    block = head(client)
    body = assert_problem(revoke(client, UNKNOWN), 404, "unknown-record")
    assert UNKNOWN in body["detail"]
    assert head(client) == block


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        (f"/v1/records/{UNKNOWN}/revoke", {"reason": ""}, ["body", "reason"]),
        (f"/v1/records/{UNKNOWN}/revoke", {"reason": "r" * 1001}, ["body", "reason"]),
        (f"/v1/records/{UNKNOWN}/revoke", {}, ["body", "reason"]),
        (f"/v1/records/{UNKNOWN}/revoke", {"reason": "x", "force": True}, ["body", "force"]),
        ("/v1/records/0xnothex/revoke", {"reason": "x"}, ["path", "record_hash"]),
    ],
    ids=["empty-reason", "long-reason", "no-reason", "extra-key", "malformed-hash"],
)
def test_invalid_revocation_is_422(
    client: TestClient, path: str, body: dict[str, Any], where: list[str]
) -> None:
    problem = assert_problem(client.post(path, json=body), 422, "invalid-request")
    assert problem["errors"][0]["loc"] == where


def test_a_reason_is_kept_verbatim(client: TestClient) -> None:
    dataset = upload(client, SALES_CSV).json()["content_hash"]
    reason = 'Ünïcode, "quotes" and\nnewlines — all kept'
    assert revoke(client, dataset, reason).json()["revocation"]["reason"] == reason


def test_revoke_with_the_wrong_method_is_405(client: TestClient) -> None:
    assert_problem(client.get(f"/v1/records/{UNKNOWN}/revoke"), 405, "method-not-allowed")

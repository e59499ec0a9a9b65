"""POST /v1/verify/receipt, GET /v1/verify/models/{hash}, POST /v1/verify/dataset over HTTP.

A real service on a persistent embedded chain: raw sales data, a cleaned dataset derived from
it, a linear model trained on the cleaned one, predictions with receipts. Every tamper a client
could try on a receipt fails its own named check with the verdict ``invalid``; a genuine
receipt is ``pending`` until anchored and ``valid`` after, whether the client sends the
receipt it was handed or the anchored one.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from api.service._core import Core
from ledger.formats.receipt_signing import ReceiptSigner
from ledger.formats.receipts import input_hash
from tests.api.conftest import assert_problem, train, upload

RAW_CSV = (
    "x1,x2,y\n"
    "100,200,5000\n"
    "200,300,6000\n"
    "300,400,7000\n"
    "300,400,7000\n"  # a duplicate
    "250,,6500\n"  # a gap
)
CLASSES_CSV = "a,b,label\n0,0,no\n1,0,no\n0,1,no\n5,5,yes\n6,5,yes\n5,6,yes\n"
ROWS = [{"x1": 150, "x2": 250}, {"x1": 400, "x2": 500}]


@dataclass
class Flow:
    """The hashes of one run of the pipeline and the receipts it handed out."""

    raw: str
    clean: str
    model: str
    other_model: str
    receipts: list[dict[str, Any]]


def _core(client: TestClient) -> Core:
    return client.app.state.service.core  # type: ignore[attr-defined]


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _predict(client: TestClient, model: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return _ok(client.post(f"/v1/models/{model}/predict", json={"rows": rows}))["receipts"]


def _anchor(client: TestClient) -> dict[str, Any]:
    body = _ok(client.post("/v1/anchor"))
    assert all(b["error"] is None for b in body["batches"]), body
    return body


def _get(client: TestClient, receipt: dict[str, Any]) -> dict[str, Any]:
    return _ok(client.get(f"/v1/receipts/{receipt['receipt_id']}"))


def _verify(client: TestClient, receipt: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return _ok(client.post("/v1/verify/receipt", json={"receipt": receipt, **extra}))


def _check(report: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in report["checks"] if c["name"] == name]
    assert len(found) == 1, (name, report)
    return found[0]


def _failed(report: dict[str, Any]) -> list[str]:
    return [c["name"] for c in report["checks"] if c["ok"] is False]


def _assert_fails(report: dict[str, Any], *names: str) -> None:
    assert report["verdict"] == "invalid", report
    for name in names:
        assert _check(report, name)["ok"] is False, report


@pytest.fixture
def flow(client: TestClient) -> Flow:
    raw = _ok(upload(client, RAW_CSV), 201)["content_hash"]
    steps = [{"step": "drop_duplicates"}, {"step": "drop_missing"}]
    clean = _ok(client.post(f"/v1/datasets/{raw}/derive", json={"steps": steps}), 201)
    model = _ok(train(client, clean["content_hash"]), 201)["model_hash"]
    other = _ok(train(client, clean["content_hash"], algorithm="ridge"), 201)["model_hash"]
    return Flow(raw, clean["content_hash"], model, other, _predict(client, model, ROWS))


# ---------------------------------------------------------------------------------------------
# Genuine receipts
# ---------------------------------------------------------------------------------------------


def test_a_genuine_receipt_is_pending_then_valid(client: TestClient, flow: Flow) -> None:
    handed = flow.receipts[0]
    assert handed["status"] == "pending"
    before = _verify(client, handed)
    assert before["verdict"] == "pending", before
    assert _failed(before) == []
    assert before["subject"] == handed["receipt_id"] and before["kind"] == "receipt"

    _anchor(client)
    anchored = _get(client, handed)
    for document in (anchored, handed):  # the server fills in the anchoring it recorded
        report = _verify(client, document)
        assert report["verdict"] == "valid", report
        assert all(c["ok"] is True for c in report["checks"]), report
        assert {c["name"] for c in report["checks"]} >= {
            "output_hash",
            "signature",
            "merkle_proof",
            "batch_anchored",
            "signer_authorized",
            "model_registered",
            "model_not_revoked",
            "training_data",
            "artifacts",
        }


def test_rerun_reproduces_the_output_and_fails_on_another_input(
    client: TestClient, flow: Flow
) -> None:
    _anchor(client)
    receipt = _get(client, flow.receipts[0])
    report = _verify(client, receipt, input=ROWS[0], rerun=True)
    assert report["verdict"] == "valid", report
    assert _check(report, "rerun")["ok"] is True
    assert _check(report, "input_hash")["ok"] is True

    report = _verify(client, receipt, input=ROWS[1], rerun=True)
    _assert_fails(report, "rerun", "input_hash")
    assert sorted(_failed(report)) == ["input_hash", "rerun"]


def test_rerun_reproduces_a_classifiers_label_and_probabilities(client: TestClient) -> None:
    data = _ok(upload(client, CLASSES_CSV), 201)["content_hash"]
    model = _ok(train(client, data, algorithm="logistic_regression", target="label"), 201)[
        "model_hash"
    ]
    rows = [{"a": 0, "b": 1}, {"a": 6, "b": 6}]
    receipts = _predict(client, model, rows)
    assert {r["output"]["label"] for r in receipts} == {"no", "yes"}
    for receipt, row in zip(receipts, rows, strict=True):
        report = _verify(client, receipt, input=row, rerun=True)
        assert report["verdict"] == "pending", report
        assert _check(report, "rerun")["ok"] is True


def test_an_input_the_model_cannot_take_fails_input_hash_and_rerun(
    client: TestClient, flow: Flow
) -> None:
    for row in ({"x1": "abc", "x2": 1}, {"zz": 1}):
        report = _verify(client, flow.receipts[0], input=row, rerun=True)
        assert sorted(_failed(report)) == ["input_hash", "rerun"], report
    # NaN is not JSON, but Python's parser takes it: still a finding, not an error.
    body = json.dumps({"receipt": flow.receipts[0], "input": {"x1": float("nan"), "x2": 1}})
    response = client.post(
        "/v1/verify/receipt", content=body, headers={"content-type": "application/json"}
    )
    report = _ok(response)
    _assert_fails(report, "input_hash")


def test_rerun_needs_the_input(client: TestClient, flow: Flow) -> None:
    response = client.post("/v1/verify/receipt", json={"receipt": flow.receipts[0], "rerun": True})
    assert_problem(response, 422, "input-required")


def test_a_malformed_receipt_is_a_problem_not_a_report(client: TestClient, flow: Flow) -> None:
    broken = {**flow.receipts[0], "signature": "0x1234"}
    assert_problem(
        client.post("/v1/verify/receipt", json={"receipt": broken}), 422, "malformed-receipt"
    )
    missing = {k: v for k, v in flow.receipts[0].items() if k != "model_hash"}
    assert_problem(
        client.post("/v1/verify/receipt", json={"receipt": missing}), 422, "malformed-receipt"
    )


# ---------------------------------------------------------------------------------------------
# Tampering
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def anchored(client: TestClient, flow: Flow) -> dict[str, Any]:
    """The first receipt, anchored, as GET /v1/receipts/{id} returns it."""
    _anchor(client)
    return _get(client, flow.receipts[0])


@pytest.mark.parametrize(
    "change",
    [
        {"batch_id": "0x12"},
        {"batch_id": 5},
        {"leaf": "zz"},
        {"proof": "0xabcd"},
        {"proof": ["0x12"]},
        {"proof": [5]},
        {"proof": {"a": 1}},
    ],
    ids=["short-batch", "int-batch", "bad-leaf", "str-proof", "short-node", "int-node", "dict"],
)
def test_malformed_anchoring_is_a_problem_not_a_server_error(
    client: TestClient, anchored: dict[str, Any], change: dict[str, Any]
) -> None:
    response = client.post("/v1/verify/receipt", json={"receipt": {**anchored, **change}})
    body = assert_problem(response, 422, "malformed-receipt")
    assert "anchoring" in body["detail"]


def test_an_anchoring_claim_for_a_batch_never_anchored_fails_batch_anchored(
    client: TestClient, anchored: dict[str, Any]
) -> None:
    report = _verify(client, {**anchored, "batch_id": "0x" + "00" * 32})
    _assert_fails(report, "merkle_proof", "batch_anchored")


def test_output_changed_fails_output_hash(client: TestClient, anchored: dict[str, Any]) -> None:
    report = _verify(client, {**anchored, "output": anchored["output"] + 1000})
    _assert_fails(report, "output_hash")
    assert _failed(report) == ["output_hash"]


def test_input_hash_changed_fails_the_signature(
    client: TestClient, anchored: dict[str, Any]
) -> None:
    forged = {**anchored, "input_hash": "0x" + input_hash({"x1": 1, "x2": 1}).hex()}
    _assert_fails(_verify(client, forged), "signature", "merkle_proof")


def test_model_hash_swapped_fails_the_signature_and_the_anchoring(
    client: TestClient, flow: Flow, anchored: dict[str, Any]
) -> None:
    report = _verify(client, {**anchored, "model_hash": flow.other_model})
    _assert_fails(report, "signature", "batch_anchored")


def test_a_proof_from_another_batch_fails_merkle_proof(
    client: TestClient, flow: Flow, anchored: dict[str, Any]
) -> None:
    [later] = _predict(client, flow.model, [{"x1": 1, "x2": 2}])
    _anchor(client)
    other = _get(client, later)
    assert other["batch_id"] != anchored["batch_id"]
    # Its proof, under this receipt's batch; then its whole anchoring.
    _assert_fails(_verify(client, {**anchored, "proof": other["proof"]}), "merkle_proof")
    moved = {**anchored, **{k: other[k] for k in ("batch_id", "root", "leaf", "proof")}}
    _assert_fails(_verify(client, moved), "merkle_proof")


def test_a_key_without_registrar_role_fails_signer_authorized(
    client: TestClient, flow: Flow
) -> None:
    core = _core(client)
    intruder = ReceiptSigner(Account.create().key, core.domain)  # same domain, no role
    forged = intruder.sign(
        model_hash=flow.model, input_hash=input_hash(ROWS[0]), output=flow.receipts[0]["output"]
    )
    report = _verify(client, json.loads(forged.to_json()))
    _assert_fails(report, "signer_authorized")
    assert _failed(report) == ["signer_authorized"]
    assert _check(report, "signature")["ok"] is True


def test_a_model_revoked_after_anchoring_fails_model_not_revoked(
    client: TestClient, flow: Flow, anchored: dict[str, Any]
) -> None:
    _ok(client.post(f"/v1/records/{flow.model}/revoke", json={"reason": "biased"}))
    report = _verify(client, anchored, input=ROWS[0], rerun=True)
    _assert_fails(report, "model_not_revoked")
    assert _failed(report) == ["model_not_revoked"]
    # An auditor can still reproduce what the revoked model said.
    assert _check(report, "rerun")["ok"] is True


@pytest.mark.parametrize("which", ["clean", "raw"], ids=["training-dataset", "its-parent"])
def test_a_training_dataset_or_its_parent_revoked_later_fails_training_data(
    client: TestClient, flow: Flow, anchored: dict[str, Any], which: str
) -> None:
    revoked = getattr(flow, which)
    _ok(client.post(f"/v1/records/{revoked}/revoke", json={"reason": "no consent"}))
    report = _verify(client, anchored)
    _assert_fails(report, "training_data")
    assert _failed(report) == ["training_data"]
    assert revoked in _check(report, "training_data")["detail"]


def test_a_model_file_altered_in_the_store_fails_artifacts(
    client: TestClient, flow: Flow, anchored: dict[str, Any]
) -> None:
    path = _core(client).store.path_of(flow.model)
    path.write_bytes(path.read_bytes() + b"\0")
    report = _verify(client, anchored)
    _assert_fails(report, "artifacts")
    assert _failed(report) == ["artifacts"]
    assert flow.model in _check(report, "artifacts")["detail"]


def test_an_unanchored_receipt_is_pending_not_valid(client: TestClient, flow: Flow) -> None:
    report = _verify(client, flow.receipts[1])
    assert report["verdict"] == "pending"
    assert _check(report, "merkle_proof")["ok"] is None
    assert _check(report, "batch_anchored")["ok"] is None
    tampered = copy.deepcopy(flow.receipts[1])
    tampered["output"] = 0.0
    assert _verify(client, tampered)["verdict"] == "invalid"


def test_a_receipt_whose_batch_failed_is_invalid_not_pending(
    client: TestClient, flow: Flow
) -> None:
    _ok(client.post(f"/v1/records/{flow.model}/revoke", json={"reason": "withdrawn"}))
    body = _ok(client.post("/v1/anchor"))
    [batch] = body["batches"]
    assert batch["state"] == "failed" and "revoked" in batch["error"]
    report = _verify(client, flow.receipts[0])
    _assert_fails(report, "batch_anchored", "model_not_revoked")
    assert "revoked" in _check(report, "batch_anchored")["detail"]


def test_the_service_key_losing_its_role(client: TestClient, flow: Flow) -> None:
    """Receipts it anchored before stay valid; receipts it signs after fail signer_authorized."""
    _anchor(client)
    core = _core(client)
    before = _get(client, flow.receipts[0])
    core.client.revoke_registrar(core.account.address)  # the admin is the service key

    report = _verify(client, before)
    assert report["verdict"] == "valid", report
    assert "lost REGISTRAR_ROLE" in _check(report, "signer_authorized")["detail"]

    [after] = _predict(client, flow.model, [{"x1": 5, "x2": 6}])
    body = _ok(client.post("/v1/anchor"))
    [batch] = body["batches"]
    assert batch["state"] == "planned" and batch["error"]  # kept, not given up
    assert _get(client, after)["status"] == "pending"
    report = _verify(client, after)
    _assert_fails(report, "signer_authorized")
    assert _failed(report) == ["signer_authorized"]


# ---------------------------------------------------------------------------------------------
# Models and dataset files
# ---------------------------------------------------------------------------------------------


def test_verify_model_with_retraining(client: TestClient, flow: Flow) -> None:
    report = _ok(client.get(f"/v1/verify/models/{flow.model}", params={"retrain": "true"}))
    assert report["verdict"] == "valid", report
    assert _check(report, "reproducible")["ok"] is True
    assert _check(report, "artifacts")["ok"] is True

    _ok(client.post(f"/v1/records/{flow.raw}/revoke", json={"reason": "no consent"}))
    report = _ok(client.get(f"/v1/verify/models/{flow.model}"))
    _assert_fails(report, "training_data")
    assert_problem(client.get(f"/v1/verify/models/0x{'00' * 32}"), 404, "unknown-model")


def test_verify_dataset_files(client: TestClient, flow: Flow) -> None:
    def verify(data: str) -> dict[str, Any]:
        response = client.post("/v1/verify/dataset", files={"file": ("d.csv", data)})
        return _ok(response)

    raw = verify(RAW_CSV)
    assert raw["verdict"] == "valid" and raw["subject"] == flow.raw
    assert _check(raw, "rows_root")["ok"] is True
    clean_bytes = client.get(f"/v1/datasets/{flow.clean}/content").text
    derived = verify(clean_bytes)
    assert derived["verdict"] == "valid" and _check(derived, "ancestors")["ok"] is True

    unknown = verify(RAW_CSV + "1,1,1\n")
    _assert_fails(unknown, "dataset_registered")

    _ok(client.post(f"/v1/records/{flow.raw}/revoke", json={"reason": "no consent"}))
    _assert_fails(verify(RAW_CSV), "dataset_not_revoked")
    _assert_fails(verify(clean_bytes), "ancestors")

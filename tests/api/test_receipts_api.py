"""Receipts over HTTP: what predict hands out, GET /v1/receipts/{id}, POST /v1/anchor, and the
anchorer thread behind them (by size, by age, per model; a revoked model's batch fails).

Background anchoring is observed by polling with a generous timeout, never by timing.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from fastapi.testclient import TestClient

from api.schemas import ReceiptPublic
from api.service._core import Core
from api.settings import Settings
from ledger.formats.merkle import leaf_hash, verify_proof
from ledger.formats.receipts import (
    RECEIPT_LEAF_ENCODING,
    Receipt,
    receipt_leaf,
    receipt_leaf_hash,
    typed_data,
)
from tests.api.conftest import SALES_CSV, assert_problem, authorized_client, train, upload

TIMEOUT = 60.0  # seconds; only ever reached when anchoring is broken
ROWS = [{"x1": 150, "x2": 250}, {"x1": 400, "x2": 500}, {"x1": 10, "x2": 20}]
RECEIPT_FIELDS = {
    "receipt_id",
    "model_hash",
    "input_hash",
    "output",
    "output_hash",
    "issued_at",
    "service",
    "signature",
}
FORMAT_FIELDS = {"format", "signed_root", "signed_proof"}
ANCHOR_FIELDS = {"status", "batch_id", "root", "leaf", "proof", "tx_hash", "block_number"}


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _core(client: TestClient) -> Core:
    return client.app.state.service.core  # type: ignore[attr-defined]


def _model(client: TestClient, csv: str = SALES_CSV, **overrides: Any) -> str:
    response = upload(client, csv)
    assert response.status_code in (200, 201), response.text
    return _ok(train(client, response.json()["content_hash"], **overrides), 201)["model_hash"]


def _predict(client: TestClient, model: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return _ok(client.post(f"/v1/models/{model}/predict", json={"rows": rows}))["receipts"]


def _get(client: TestClient, receipt: dict[str, Any]) -> dict[str, Any]:
    return _ok(client.get(f"/v1/receipts/{receipt['receipt_id']}"))


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.05)


def _assert_anchored(client: TestClient, doc: dict[str, Any]) -> None:
    """Anchored, with a proof from the receipt's own leaf to a root the chain holds."""
    assert doc["status"] == "anchored", doc
    assert doc["batch_id"] == doc["root"]
    receipt = Receipt.model_validate({k: doc[k] for k in RECEIPT_FIELDS})
    leaf = "0x" + leaf_hash(RECEIPT_LEAF_ENCODING, receipt_leaf(receipt)).hex()
    assert doc["leaf"] == leaf
    assert verify_proof(doc["root"], doc["leaf"], doc["proof"])
    event = _core(client).client.batch_anchoring(doc["root"])
    assert (event.tx_hash, event.block_number) == (doc["tx_hash"], doc["block_number"])
    assert event.model_hash == doc["model_hash"]


# ---------------------------------------------------------------------------------------------
# What predict hands out
# ---------------------------------------------------------------------------------------------


def test_predict_hands_out_one_signed_receipt_per_row(client: TestClient) -> None:
    model = _model(client)
    response = client.post(f"/v1/models/{model}/predict", json={"rows": ROWS})
    body = _ok(response)
    receipts = body["receipts"]
    assert len(receipts) == len(ROWS) == len({r["receipt_id"] for r in receipts})
    # The predictions are written as json.dumps writes them (from the outputs' texts).
    values = json.dumps(body["predictions"], separators=(",", ":"))
    assert f'"predictions":{values},"probabilities":null,' in response.text
    chain = _ok(client.get("/v1/chain"))
    core = _core(client)
    for receipt, row, prediction in zip(receipts, ROWS, body["predictions"], strict=True):
        assert set(receipt) >= RECEIPT_FIELDS | ANCHOR_FIELDS
        assert receipt["status"] == "pending" and receipt["proof"] is None
        assert receipt["model_hash"] == model
        assert receipt["output"] == prediction
        assert receipt["service"] == chain["registrar"]
        canonical = json.dumps(row, sort_keys=True, separators=(",", ":")).encode()
        assert receipt["input_hash"] == "0x" + hashlib.sha256(canonical).hexdigest()
        assert (
            receipt["output_hash"]
            == "0x" + hashlib.sha256(json.dumps(prediction).encode()).hexdigest()
        )
        # Format 2: one signature over the request's root, and this receipt's proof to it.
        assert receipt["format"] == 2 and receipt["signature"] == receipts[0]["signature"]
        assert receipt["signed_root"] == receipts[0]["signed_root"]
        parsed = Receipt.model_validate({k: receipt[k] for k in RECEIPT_FIELDS | FORMAT_FIELDS})
        assert verify_proof(parsed.signed_root, receipt_leaf_hash(parsed), parsed.signed_proof)
        # EIP-712, checked with eth-account rather than our own code.
        message = encode_typed_data(full_message=typed_data(parsed, core.domain))
        assert (
            Account.recover_message(message, signature=receipt["signature"]) == chain["registrar"]
        )
        # The answer's text is the documented schema, and the stored receipt is the same one.
        assert ReceiptPublic.model_validate(receipt).model_dump(mode="json") == receipt
        assert core.domain.verifying_contract == chain["contract_address"]
        # Written before the answer: the service can already show it.
        assert _get(client, receipt)["status"] == "pending"


def test_unknown_and_malformed_receipt_ids(client: TestClient) -> None:
    assert_problem(client.get(f"/v1/receipts/0x{'ab' * 32}"), 404, "unknown-receipt")
    assert client.get("/v1/receipts/not-a-hash").status_code == 422


def test_receipt_ids_are_case_insensitive(client: TestClient) -> None:
    [receipt] = _predict(client, _model(client), ROWS[:1])
    upper = "0x" + receipt["receipt_id"][2:].upper()
    assert _ok(client.get(f"/v1/receipts/{upper}"))["receipt_id"] == receipt["receipt_id"]


# ---------------------------------------------------------------------------------------------
# POST /v1/anchor
# ---------------------------------------------------------------------------------------------


def test_anchor_now_anchors_pending_receipts_with_their_proofs(client: TestClient) -> None:
    model = _model(client)
    receipts = _predict(client, model, ROWS)
    body = _ok(client.post("/v1/anchor"))
    [batch] = body["batches"]
    assert batch["model_hash"] == model and batch["count"] == 3
    assert batch["state"] == "anchored" and batch["error"] is None and batch["tx_hash"]
    assert body["receipts"] == {"pending": 0, "anchored": 3, "failed": 0}
    for receipt in receipts:
        doc = _get(client, receipt)
        assert doc["batch_id"] == batch["batch_id"] and doc["tx_hash"] == batch["tx_hash"]
        assert {k: doc[k] for k in RECEIPT_FIELDS} == {k: receipt[k] for k in RECEIPT_FIELDS}
        _assert_anchored(client, doc)
    # Nothing pending: nothing sent.
    assert _ok(client.post("/v1/anchor"))["batches"] == []


def test_anchor_now_takes_wait_on_the_embedded_chain(client: TestClient) -> None:
    """accepted is answered final here, as on every route (the embedded chain writes its block
    inside the send); included answers in the block, and the receipts follow once final."""
    model = _model(client)
    _predict(client, model, ROWS[:1])
    [batch] = _ok(client.post("/v1/anchor?wait=accepted"))["batches"]
    assert batch["state"] == "anchored" and batch["tx_hash"]
    [receipt] = _predict(client, model, ROWS[1:2])
    [batch] = _ok(client.post("/v1/anchor?wait=included"))["batches"]
    assert batch["state"] == "included" and batch["tx_hash"] and batch["block_number"]
    _wait_until(lambda: _get(client, receipt)["status"] == "anchored", "marked anchored")
    assert _get(client, receipt)["tx_hash"] == batch["tx_hash"]


def test_anchoring_needs_a_registrar_key(client: TestClient, settings: Settings) -> None:
    [receipt] = _predict(client, _model(client), ROWS[:1])
    del client.headers["Authorization"]
    assert_problem(client.post("/v1/anchor"), 401, "unauthorized")
    assert _get(client, receipt)["status"] == "pending"  # reads stay public


def test_receipts_of_two_models_go_to_two_batches(client: TestClient) -> None:
    first = _model(client)
    second = _model(client, algorithm="ridge")
    a = _predict(client, first, ROWS[:2])
    b = _predict(client, second, ROWS[:1])
    a += _predict(client, first, ROWS[2:])
    body = _ok(client.post("/v1/anchor"))
    assert sorted((x["model_hash"], x["count"]) for x in body["batches"]) == sorted(
        [(first, 3), (second, 1)]
    )
    roots = {x["model_hash"]: x["batch_id"] for x in body["batches"]}
    for model, receipts in ((first, a), (second, b)):
        for receipt in receipts:
            doc = _get(client, receipt)
            assert doc["batch_id"] == roots[model]
            _assert_anchored(client, doc)


def test_a_batch_whose_model_was_revoked_before_anchoring_fails(client: TestClient) -> None:
    model = _model(client)
    receipts = _predict(client, model, ROWS[:2])
    _ok(client.post(f"/v1/records/{model}/revoke", json={"reason": "leaked test data"}))
    body = _ok(client.post("/v1/anchor"))
    [batch] = body["batches"]
    assert batch["state"] == "failed" and batch["tx_hash"] is None
    assert "revoked" in batch["error"]
    assert body["receipts"] == {"pending": 0, "anchored": 0, "failed": 2}
    for receipt in receipts:
        doc = _get(client, receipt)
        assert doc["status"] == "failed" and doc["error"] == batch["error"]
        assert doc["proof"] is None and doc["batch_id"] is None
    assert _ok(client.post("/v1/anchor"))["batches"] == []  # not retried


def test_receipts_survive_a_clean_restart(settings: Settings) -> None:
    with authorized_client(settings) as client:
        receipts = _predict(client, _model(client), ROWS)
    with authorized_client(settings) as client:
        assert all(_get(client, r)["status"] == "pending" for r in receipts)
        _ok(client.post("/v1/anchor"))
        for receipt in receipts:
            _assert_anchored(client, _get(client, receipt))


def test_a_service_set_to_format_1_signs_each_receipt_and_both_formats_verify(
    settings: Settings,
) -> None:
    """An operator whose clients' verifiers predate format 2 issues format 1
    (``receipt_format = 1``); receipts of both formats, in one book and one batch, verify."""
    with authorized_client(settings) as client:
        model = _model(client)
        newer = _predict(client, model, ROWS)
    with authorized_client(settings.model_copy(update={"receipt_format": 1})) as client:
        older = _predict(client, model, ROWS)
        assert [r["format"] for r in older] == [1] * len(ROWS)
        assert {r["signed_root"] for r in older} == {None}
        assert len({r["signature"] for r in older}) == len(ROWS)  # one signature each
        [batch] = _ok(client.post("/v1/anchor"))["batches"]
        assert batch["count"] == 2 * len(ROWS)
        for receipt in newer + older:
            report = _ok(client.post("/v1/verify/receipt", json={"receipt": receipt}))
            assert report["verdict"] == "valid", report
            _assert_anchored(client, _get(client, receipt))


# ---------------------------------------------------------------------------------------------
# The anchorer thread behind the API
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def batch_of_three(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", anchor_batch_size=3, anchor_interval=3600)
    with authorized_client(settings) as client:
        yield client


@pytest.fixture
def quick_interval(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", anchor_batch_size=10_000, anchor_interval=0.3)
    with authorized_client(settings) as client:
        yield client


def test_a_batch_forms_when_n_are_pending(batch_of_three: TestClient) -> None:
    client = batch_of_three
    model = _model(client)
    first = _predict(client, model, ROWS[:2])
    second = _predict(client, model, ROWS[2:])
    receipts = first + second
    _wait_until(
        lambda: all(_get(client, r)["status"] == "anchored" for r in receipts),
        "three pending receipts are anchored",
    )
    docs = [_get(client, r) for r in receipts]
    # Two were not enough: the three went out as one batch.
    assert len({d["batch_id"] for d in docs}) == 1
    for doc in docs:
        _assert_anchored(client, doc)


def test_a_batch_forms_after_the_interval(quick_interval: TestClient) -> None:
    client = quick_interval
    [receipt] = _predict(client, _model(client), ROWS[:1])
    _wait_until(lambda: _get(client, receipt)["status"] == "anchored", "the receipt is anchored")
    _assert_anchored(client, _get(client, receipt))

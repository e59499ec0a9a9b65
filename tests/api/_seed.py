"""Real records for fuzzing the HTTP API, and the parameter values that reach them.

A fuzzer that only ever sends random hashes meets nothing but 404s: every operation on a
dataset, model, receipt or batch stops at its lookup. ``seed`` therefore registers one of each
kind of record through the API itself (a raw dataset and its cleaned child, two classifiers
trained on the child, predictions whose receipts are anchored in a batch, a pending receipt, a
revoked dataset with a model trained on it, a registrar with a role history, an API key), and
``Seeded.parameters`` names, per operation, the records a fuzzer should put in its path
parameters so that it reaches the code behind the lookups (``tests/api/_bodies.py`` does the
same for request bodies).

Records the fuzzer may destroy (revoke a record, revoke a key) get their own sacrificial
records, so that the rest of a run still meets live data.

Used by ``tests/api/test_fuzz.py`` (in-process, bounded) and ``bench/fuzz.py`` (a real server,
the full run); both hand it an ``httpx.Client`` (a Starlette ``TestClient`` is one) that holds
the admin key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from eth_account import Account

__all__ = ["CLASSIFIER_CSV", "FEATURES", "REVOKED_CSV", "TARGET", "VICTIM_CSV", "Seeded", "seed"]

FEATURES = ("x1", "x2")
TARGET = "label"
# Two separable classes, one duplicated row and one missing cell, so that cleaning changes it.
CLASSIFIER_CSV = (
    "x1,x2,label\n"
    + "".join(
        f"{x1},{x2},{int(x1 + x2 > 20)}\n" for x1, x2 in [(i, (i * 7) % 13) for i in range(1, 25)]
    )
    + "3,8,0\n3,8,0\n5,,1\n"
)
REVOKED_CSV = "x1,x2,label\n1,2,0\n2,1,0\n9,9,1\n8,9,1\n7,8,1\n1,1,0\n"
VICTIM_CSV = "a,b\n1,x\n2,y\n"
CLEANING = [{"step": "drop_duplicates"}, {"step": "drop_missing"}]


@dataclass(frozen=True)
class Seeded:
    """What ``seed`` registered; every hash is lowercase ``0x`` + 64 hex digits."""

    dataset: str  # raw, registered by upload
    derived: str  # ``dataset`` cleaned by CLEANING
    model: str  # logistic regression trained on ``derived``
    forest: str  # random forest trained on ``derived`` (trees compute in float32)
    batch: str  # the anchored batch holding ``receipts``
    receipts: tuple[str, ...]  # anchored receipt ids
    pending_receipt: str  # issued after the anchoring, not anchored yet
    receipt: dict[str, Any]  # one anchored receipt as GET /v1/receipts/{id} answers it
    receipt_input: dict[str, Any]  # the input row of ``receipt``
    revoked: str  # a revoked dataset
    tainted_model: str  # a model trained on ``revoked``
    victim: str  # a live dataset the fuzzer may revoke
    victim_key_id: str  # an auditor key the fuzzer may revoke
    registrar: str  # an address granted then refused REGISTRAR_ROLE
    row_count: int  # rows of ``dataset``

    def parameters(self) -> dict[str, dict[str, Any]]:
        """Fixed path parameters per operation (by ``METHOD /path``), in the form of
        schemathesis' ``[[operations]] parameters``; spread over the records, so that each kind
        (raw, derived, revoked, anchored, pending, tainted) is read somewhere."""
        last_row = self.row_count - 1
        return {
            "GET /v1/datasets/{content_hash}": {"content_hash": self.derived},
            "GET /v1/datasets/{content_hash}/content": {"content_hash": self.dataset},
            "GET /v1/datasets/{content_hash}/rows/{index}/proof": {
                "content_hash": self.dataset,
                "index": last_row,
            },
            "POST /v1/datasets/{content_hash}/derive": {"content_hash": self.dataset},
            "GET /v1/models/{model_hash}": {"model_hash": self.model},
            "GET /v1/models/{model_hash}/content": {"model_hash": self.model},
            "POST /v1/models/{model_hash}/predict": {"model_hash": self.forest},
            "POST /v1/records/{record_hash}/revoke": {"record_hash": self.victim},
            "GET /v1/lineage/{record_hash}": {"record_hash": self.batch},
            "GET /v1/receipts/{receipt_id}": {"receipt_id": self.pending_receipt},
            "GET /v1/receipts/{receipt_id}/bundle": {"receipt_id": self.receipts[-1]},
            "GET /v1/verify/models/{model_hash}": {"model_hash": self.tainted_model},
            "GET /v1/admin/registrars/{address}": {"address": self.registrar},
            "DELETE /v1/admin/keys/{key_id}": {"key_id": self.victim_key_id},
        }


def _ok(response: httpx.Response, *statuses: int) -> Any:
    if response.status_code not in (statuses or (200, 201)):
        raise AssertionError(f"{response.request.method} {response.request.url.path}: "
                             f"{response.status_code} {response.text}")  # fmt: skip
    return response.json()


def _upload(client: httpx.Client, csv: str, name: str) -> str:
    response = client.post(
        "/v1/datasets", files={"file": (f"{name}.csv", csv)}, data={"name": name}
    )
    return _ok(response)["content_hash"]


def _train(client: httpx.Client, dataset: str, algorithm: str = "logistic_regression") -> str:
    body = {"dataset": dataset, "algorithm": algorithm, "target": TARGET, "seed": 1}
    return _ok(client.post("/v1/models", json=body))["model_hash"]


def _predict(client: httpx.Client, model: str, rows: list[dict[str, Any]]) -> list[str]:
    answer = _ok(client.post(f"/v1/models/{model}/predict", json={"rows": rows}))
    return [r["receipt_id"] for r in answer["receipts"]]


def seed(client: httpx.Client) -> Seeded:
    """Register one record of every kind through ``client`` (which holds an admin key)."""
    dataset = _upload(client, CLASSIFIER_CSV, "classifier")
    derived = _ok(client.post(f"/v1/datasets/{dataset}/derive", json={"steps": CLEANING}))
    model = _train(client, derived["content_hash"])
    forest = _train(client, derived["content_hash"], "random_forest_classifier")
    rows = [{"x1": 3, "x2": 4}, {"x1": 20, "x2": 9}]
    receipts = _predict(client, model, rows)
    anchored = _ok(client.post("/v1/anchor"))
    batches = [b for b in anchored["batches"] if b["state"] == "anchored"]
    if len(batches) != 1:
        raise AssertionError(f"expected one anchored batch, got {anchored}")
    receipt = _ok(client.get(f"/v1/receipts/{receipts[0]}"))
    if receipt.get("status") != "anchored":
        raise AssertionError(f"receipt {receipts[0]} is not anchored: {receipt}")
    (pending,) = _predict(client, model, rows[:1])

    revoked = _upload(client, REVOKED_CSV, "revoked")
    tainted_model = _train(client, revoked)
    _ok(client.post(f"/v1/records/{revoked}/revoke", json={"reason": "seeded revocation"}))
    victim = _upload(client, VICTIM_CSV, "victim")

    key = _ok(client.post("/v1/admin/keys", json={"role": "auditor", "name": "fuzz victim"}), 201)
    registrar = Account.create().address
    for action in ("grant", "revoke"):
        body = {"address": registrar, "action": action}
        _ok(client.post("/v1/admin/registrars", json=body))
    return Seeded(
        dataset=dataset,
        derived=derived["content_hash"],
        model=model,
        forest=forest,
        batch=batches[0]["batch_id"],
        receipts=tuple(receipts),
        pending_receipt=pending,
        receipt=receipt,
        receipt_input=rows[0],
        revoked=revoked,
        tainted_model=tainted_model,
        victim=victim,
        victim_key_id=key["key_id"],
        registrar=registrar,
        row_count=CLASSIFIER_CSV.count("\n") - 1,
    )

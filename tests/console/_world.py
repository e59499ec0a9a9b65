"""One ledger for the console's tests: the demo flow and a few records an auditor must see.

Built over HTTP by any client with the admin key (a ``TestClient`` or an ``httpx.Client`` on a
real server), in this order, so that every revocation comes after what it must not stop:

* the demo flow: raw sales data, cleaned (``drop_duplicates``, ``drop_missing``), a linear model
  trained on it, one prediction, anchored: ``valid`` receipt, and its evidence bundle;
* a ridge model on the same cleaned data (for a swapped ``model_hash``), revoked after one of its
  receipts was anchored (``model_not_revoked``);
* a second anchored batch of the linear model (a proof from another batch), issued by a two-row
  request (format 2: a non-empty ``signed_proof``) and, when the receipt book's path is given,
  holding a format-1 receipt as the service wrote them before issue 26 (signed alone, stored
  without its leaf), anchored by today's service; and a third batch, revoked
  (``batch_not_revoked``);
* loans data with a model trained on it and an anchored receipt; then the loans data is revoked:
  its model is tainted (``training_data``);
* finally one receipt of the linear model left pending.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.chain.keys import load_or_create_key
from ledger.formats.receipt_signing import ReceiptSigner
from ledger.formats.receipts import ReceiptDomain, input_hash

SALES_CSV = "x1,x2,y\n100,200,5000\n200,300,6000\n300,400,7000\n300,400,7000\n250,,6500\n"
LOANS_CSV = "income,debt,approved\n10,5,0\n40,5,1\n20,15,0\n60,10,1\n35,2,1\n15,12,0\n"
STEPS = [{"step": "drop_duplicates"}, {"step": "drop_missing"}]
ROW = {"x1": 150, "x2": 250}


@dataclass
class World:
    raw: str
    clean: str
    model: str
    ridge: str
    loans: str
    loans_model: str
    receipt: dict[str, Any]  # anchored, valid
    bundle: dict[str, Any]  # its evidence bundle
    later: dict[str, Any]  # anchored in a later batch of the same model
    ridge_receipt: dict[str, Any]  # anchored, then its model revoked
    revoked_batch_receipt: dict[str, Any]  # anchored, then its batch revoked
    loans_receipt: dict[str, Any]  # anchored, then its training data revoked
    pending: dict[str, Any]  # never anchored
    chain: dict[str, Any] = field(default_factory=dict)
    multi: dict[str, Any] = field(default_factory=dict)  # format 2, second row of its request
    format1: dict[str, Any] | None = None  # format 1, anchored in the later batch


def _ok(response: Any, *statuses: int) -> Any:
    assert response.status_code in (statuses or (200, 201)), response.text
    return response.json()


FORMAT1_ROW = {"x1": 410, "x2": 510}


def write_format1_receipt(data_dir: Path, model: str, chain: dict[str, Any]) -> str:
    """A format-1 receipt for ``model``, signed by the service's key and written into its
    receipt book as the service did before issue 26 (body and input, no leaf); its id."""
    domain = ReceiptDomain(chain["chain_id"], chain["contract_address"])
    signer = ReceiptSigner(load_or_create_key(data_dir / "service.key").key, domain)
    receipt = signer.sign(model_hash=model, input_hash=input_hash(FORMAT1_ROW), output=5000.0)
    receipt_id = "0x" + receipt.receipt_id.hex()
    with sqlite3.connect(data_dir / "receipts.sqlite3", isolation_level=None) as db:
        db.execute(
            "INSERT INTO receipts (receipt_id, model_hash, created_at, body, input) "
            "VALUES (?, ?, ?, ?, ?)",
            (receipt_id, model, time.time(), receipt.to_json(),
             json.dumps(FORMAT1_ROW, sort_keys=True, separators=(",", ":"))),
        )  # fmt: skip
    db.close()
    return receipt_id


def build_world(api: Any, data_dir: Path | None = None) -> World:
    """Register, train, predict, anchor and revoke as the module docstring says; with the
    service's ``data_dir``, also a format-1 receipt in the later batch."""

    def predict(model: str, row: dict[str, Any]) -> dict[str, Any]:
        body = _ok(api.post(f"/v1/models/{model}/predict", json={"rows": [row]}))
        return body["receipts"][0]

    def anchor() -> None:
        body = _ok(api.post("/v1/anchor"))
        assert all(b["error"] is None for b in body["batches"]), body

    def receipt(r: dict[str, Any]) -> dict[str, Any]:
        return _ok(api.get(f"/v1/receipts/{r['receipt_id']}"))

    def revoke(record: str, reason: str) -> None:
        _ok(api.post(f"/v1/records/{record}/revoke", json={"reason": reason}))

    def train(dataset: str, algorithm: str, target: str) -> str:
        request = {"dataset": dataset, "algorithm": algorithm, "target": target, "test_size": 0}
        return _ok(api.post("/v1/models", json=request))["model_hash"]

    raw = _ok(api.post("/v1/datasets", files={"file": ("sales.csv", SALES_CSV)},
                       data={"name": "sales", "description": "worked example"}))  # fmt: skip
    clean = _ok(api.post(f"/v1/datasets/{raw['content_hash']}/derive", json={"steps": STEPS}))
    model = train(clean["content_hash"], "linear_regression", "y")
    ridge = train(clean["content_hash"], "ridge", "y")
    first = predict(model, ROW)
    ridge_first = predict(ridge, {"x1": 120, "x2": 220})
    anchor()
    chain = _ok(api.get("/v1/chain"))
    later, multi = _ok(
        api.post(f"/v1/models/{model}/predict", json={"rows": [{"x1": 400, "x2": 500}, ROW]})
    )["receipts"]
    format1 = write_format1_receipt(data_dir, model, chain) if data_dir is not None else None
    anchor()
    doomed = predict(model, {"x1": 10, "x2": 20})
    anchor()
    doomed = receipt(doomed)
    revoke(doomed["batch_id"], "anchored by mistake")
    revoke(ridge, "superseded: over-regularised")

    loans = _ok(api.post("/v1/datasets", files={"file": ("loans.csv", LOANS_CSV)},
                         data={"name": "loans"}))  # fmt: skip
    loans_model = train(loans["content_hash"], "logistic_regression", "approved")
    loans_first = predict(loans_model, {"income": 30, "debt": 4})
    anchor()
    revoke(loans["content_hash"], "collected without consent")

    pending = predict(model, {"x1": 175, "x2": 275})
    bundle = _ok(api.get(f"/v1/receipts/{first['receipt_id']}/bundle"))
    return World(
        raw=raw["content_hash"],
        clean=clean["content_hash"],
        model=model,
        ridge=ridge,
        loans=loans["content_hash"],
        loans_model=loans_model,
        receipt=receipt(first),
        bundle=bundle,
        later=receipt(later),
        ridge_receipt=receipt(ridge_first),
        revoked_batch_receipt=doomed,
        loans_receipt=receipt(loans_first),
        pending=receipt(pending),
        chain=chain,
        multi=receipt(multi),
        format1=receipt({"receipt_id": format1}) if format1 is not None else None,
    )

"""A second ledger for the list pages, search and the private console: a few named and unnamed
datasets, two derived, two models (one on revoked data), and a batch of 2,000 receipts.

Built over HTTP by a client holding the admin key, on a service of its own (its anchoring
would otherwise flush the pending receipt the main console world keeps pending).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.console._world import _ok

WINE_CSV = "alcohol,hue,quality\n13.2,1.0,5\n12.8,0.9,6\n14.1,1.1,7\n13.0,0.95,6\n13.0,0.95,6\n"
IRIS_CSV = "sepal,petal,kind\n5.1,1.4,0\n4.9,1.4,0\n6.3,4.9,1\n5.8,5.1,1\n"
BIG_BATCH = 2_000
PREDICT_CHUNK = 1_000  # max_predict_rows


@dataclass
class ListsWorld:
    wine: str  # named "wine", file wine.csv
    iris: str  # named "iris flowers"
    wine_clean: str  # derived from wine
    wine_model: str
    iris_model: str  # trained on iris, then iris is revoked: tainted
    iris_clean: str  # derived from iris before its revocation: tainted, as its transform
    batch: str  # 2,000 receipts
    receipt_ids: list[str]  # in issue order


def build_lists_world(api: Any) -> ListsWorld:
    wine = _ok(api.post("/v1/datasets", files={"file": ("wine.csv", WINE_CSV)},
                        data={"name": "wine"}))["content_hash"]  # fmt: skip
    iris = _ok(api.post("/v1/datasets", files={"file": ("iris.csv", IRIS_CSV)},
                        data={"name": "iris flowers"}))["content_hash"]  # fmt: skip
    steps = [{"step": "drop_duplicates"}]
    clean = _ok(api.post(f"/v1/datasets/{wine}/derive", json={"steps": steps}))["content_hash"]
    clip = [{"step": "select_columns", "columns": ["sepal", "kind"]}]
    iris_clean = _ok(api.post(f"/v1/datasets/{iris}/derive", json={"steps": clip}))
    iris_clean = iris_clean["content_hash"]
    request = {"dataset": clean, "algorithm": "linear_regression", "target": "quality",
               "test_size": 0}  # fmt: skip
    wine_model = _ok(api.post("/v1/models", json=request))["model_hash"]
    request = {"dataset": iris, "algorithm": "logistic_regression", "target": "kind",
               "test_size": 0}  # fmt: skip
    iris_model = _ok(api.post("/v1/models", json=request))["model_hash"]
    ids: list[str] = []
    for start in range(0, BIG_BATCH, PREDICT_CHUNK):
        rows = [{"alcohol": 12 + i / 1000, "hue": 1.0} for i in range(start, start + PREDICT_CHUNK)]
        body = _ok(api.post(f"/v1/models/{wine_model}/predict", json={"rows": rows}))
        ids.extend(r["receipt_id"] for r in body["receipts"])
    batches = _ok(api.post("/v1/anchor"))["batches"]
    assert len(batches) == 1 and batches[0]["error"] is None, batches
    _ok(api.post(f"/v1/records/{iris}/revoke", json={"reason": "mislabelled"}))
    batch = _ok(api.get(f"/v1/receipts/{ids[0]}"))["batch_id"]
    return ListsWorld(wine, iris, clean, wine_model, iris_model, iris_clean, batch, ids)

"""Models over HTTP: train, list, read, download, predict, and every way each can be refused.

Refused training must leave the chain and the artifact store as they were; training the same
thing twice must answer the existing record without a transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from fastapi.testclient import TestClient

from api.settings import Settings
from ml.artifacts import load_model
from tests.api.conftest import SALES_CSV, assert_problem, authorized_client, train, upload

UNKNOWN = "0x" + "cd" * 32
CLASSES_CSV = "x1,x2,label\n" + "".join(
    f"{i},{(i * 7) % 5},{'hi' if i % 2 else 'lo'}\n" for i in range(20)
)


def head(client: TestClient) -> int:
    return client.get("/v1/chain").json()["latest_block"]


def stored_files(settings: Settings) -> list[str]:
    root = settings.data_dir / "artifacts"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def dataset(client: TestClient, csv: str = SALES_CSV) -> str:
    response = upload(client, csv)
    assert response.status_code == 201, response.text
    return response.json()["content_hash"]


def model(client: TestClient, dataset_hash: str, **overrides: Any) -> dict[str, Any]:
    response = train(client, dataset_hash, **overrides)
    assert response.status_code == 201, response.text
    return response.json()


class Shared(NamedTuple):
    client: TestClient
    settings: Settings
    dataset: str
    model: str


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """One service, with one dataset and one model trained on it, for the tests of refused
    requests: each checks that it changed nothing, so they need no fresh chain of their own."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("refusals") / "data", anchor_interval=3600)
    with authorized_client(settings) as client:
        data = dataset(client, "x1,x2,y\n1,2,3\n2,3,5\n4,4,4\n5,1,2\n")
        yield Shared(client, settings, data, model(client, data)["model_hash"])


# -- POST /v1/models ----------------------------------------------------------------------------


def test_train_registers_the_model_with_its_metadata(client: TestClient) -> None:
    data = dataset(client)
    block = head(client)
    body = model(client, data, seed=7)
    assert body["datasets"] == [data]
    assert body["algorithm"] == "linear_regression"
    assert body["block_number"] == block + 1 == head(client)
    assert body["registrant"] == client.get("/v1/chain").json()["registrar"]
    assert body["revoked"] is False and body["revocation"] is None
    metadata = body["metadata"]
    assert metadata["algorithm"] == "linear_regression"
    assert metadata["target"] == "y"
    assert metadata["features"] == ["x1", "x2"]  # default: every other column
    assert metadata["split"]["seed"] == 7 and metadata["split"]["test_size"] == 0
    assert metadata["datasets"][0]["content_hash"] == data
    assert metadata["metrics"]["r2"] == pytest.approx(1.0)
    assert "scikit-learn" in metadata["versions"]
    # the metadata document is the one whose hash is on chain
    assert body["metadata_hash"].startswith("0x") and len(body["metadata_hash"]) == 66
    assert client.get(f"/v1/models/{body['model_hash']}").json() == body


def test_training_the_same_thing_twice_answers_200_and_sends_nothing(
    client: TestClient, settings: Settings
) -> None:
    data = dataset(client)
    first = model(client, data)
    files, block = stored_files(settings), head(client)
    again = train(client, data)
    assert again.status_code == 200, again.text
    assert again.json() == first
    assert head(client) == block
    assert stored_files(settings) == files
    # a different seed or parameter is a different model
    assert train(client, data, params={"fit_intercept": False}).status_code == 201


def test_features_and_params_are_recorded(client: TestClient) -> None:
    data = dataset(client, CLASSES_CSV)
    body = model(
        client,
        data,
        algorithm="logistic_regression",
        target="label",
        features=["x1"],
        params={"C": 0.5},
        test_size=0.25,
        seed=3,
    )
    metadata = body["metadata"]
    assert metadata["features"] == ["x1"]
    assert metadata["params"]["C"] == 0.5
    assert metadata["requested_params"] == {"C": 0.5}
    assert metadata["classes"] == ["hi", "lo"]
    assert metadata["split"]["test_rows"] == 5 and metadata["split"]["train_rows"] == 15
    assert set(metadata["metrics"]) >= {"accuracy"}


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"algorithm": "deep_magic"}, "unknown-algorithm"),
        ({"params": {"learning_rate": 0.1}}, "unknown-parameter"),
        ({"algorithm": "ridge", "params": {"alpha": "lots"}}, "invalid-parameter"),
        ({"target": "revenue"}, "unknown-column"),
        ({"features": ["x1", "nope"]}, "unknown-column"),
        ({"features": ["y"]}, "invalid-target"),
        ({"test_size": 0.9}, "invalid-split"),
        ({"test_size": 1.0}, "invalid-request"),
        ({"seed": -1}, "invalid-request"),
        ({"params": [1, 2]}, "invalid-request"),
        ({"epochs": 3}, "invalid-request"),
        ({"dataset": "0x1234"}, "invalid-request"),
        ({"algorithm": "x" * 65}, "invalid-request"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_invalid_training_is_422_and_nothing_is_kept(
    shared: Shared, overrides: dict[str, Any], problem: str
) -> None:
    client, settings = shared.client, shared.settings
    files, block = stored_files(settings), head(client)
    request = {"dataset": shared.dataset, "algorithm": "linear_regression", "target": "y",
               **overrides}  # fmt: skip
    body = assert_problem(client.post("/v1/models", json=request), 422, problem)
    assert body["detail"]
    assert stored_files(settings) == files
    assert head(client) == block
    assert client.get("/v1/models").json()["count"] == 1


def test_regression_on_a_string_target_is_422(client: TestClient) -> None:
    data = dataset(client, CLASSES_CSV)
    body = assert_problem(train(client, data, target="label"), 422, "invalid-target")
    assert "label" in body["detail"]


def test_missing_fields_are_422(client: TestClient) -> None:
    body = assert_problem(client.post("/v1/models", json={}), 422, "invalid-request")
    missing = {tuple(e["loc"]) for e in body["errors"] if e["type"] == "missing"}
    assert missing == {("body", "dataset"), ("body", "algorithm"), ("body", "target")}


def test_training_on_an_unknown_dataset_is_404(client: TestClient) -> None:
    assert_problem(train(client, UNKNOWN), 404, "unknown-dataset")


def test_training_on_a_revoked_dataset_is_409_and_sends_nothing(
    client: TestClient, settings: Settings
) -> None:
    data = dataset(client)
    assert client.post(f"/v1/records/{data}/revoke", json={"reason": "pii"}).status_code == 200
    files, block = stored_files(settings), head(client)
    assert_problem(train(client, data), 409, "record-revoked")
    assert head(client) == block
    assert stored_files(settings) == files


# -- GET /v1/models -----------------------------------------------------------------------------


def test_list_is_paged_newest_first(client: TestClient) -> None:
    data = dataset(client)
    hashes = [
        model(client, data, seed=0, params={"tol": 10.0**-i})["model_hash"] for i in (3, 4, 5)
    ]
    everything = client.get("/v1/models").json()
    assert everything["count"] == 3
    assert [m["model_hash"] for m in everything["data"]] == hashes[::-1]
    page = client.get("/v1/models", params={"offset": 2, "limit": 1}).json()
    assert page == {"data": [everything["data"][2]], "count": 3}
    assert client.get("/v1/models", params={"offset": 3}).json() == {"data": [], "count": 3}
    assert_problem(client.get("/v1/models", params={"limit": 0}), 422, "invalid-request")


# -- GET /v1/models/{hash}, /content ------------------------------------------------------------


def test_unknown_and_malformed_model_hashes(client: TestClient) -> None:
    data = dataset(client)
    assert_problem(client.get(f"/v1/models/{UNKNOWN}"), 404, "unknown-model")
    assert_problem(client.get(f"/v1/models/{data}"), 404, "unknown-model")  # a dataset's hash
    assert_problem(client.get(f"/v1/models/{UNKNOWN}/content"), 404, "unknown-model")
    for path in ("/v1/models/nope", "/v1/models/0x12/content", "/v1/models/0x12/predict"):
        method = client.post if path.endswith("predict") else client.get
        kwargs = {"json": {"rows": [{"x1": 1, "x2": 2}]}} if method is client.post else {}
        body = assert_problem(method(path, **kwargs), 422, "invalid-request")
        assert body["errors"][0]["loc"] == ["path", "model_hash"]


def test_content_is_the_model_file_that_hashes_to_the_model_hash(client: TestClient) -> None:
    body = model(client, dataset(client))
    response = client.get(f"/v1/models/{body['model_hash']}/content")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert "0x" + hashlib.sha256(response.content).hexdigest() == body["model_hash"]
    loaded = load_model(response.content, bytes.fromhex(body["model_hash"][2:]))
    assert loaded.predict([{"x1": 150, "x2": 250}]).values[0] == pytest.approx(5500.0)


# -- POST /v1/models/{hash}/predict -------------------------------------------------------------


def test_predict_answers_values_and_a_receipt_per_row(client: TestClient) -> None:
    body = model(client, dataset(client))
    rows = [{"x1": 150, "x2": 250}, {"x1": 400, "x2": 500}]
    response = client.post(f"/v1/models/{body['model_hash']}/predict", json={"rows": rows})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["model_hash"] == body["model_hash"]
    assert result["predictions"] == [pytest.approx(5500.0), pytest.approx(8000.0)]
    assert result["probabilities"] is None
    assert len(result["receipts"]) == 2
    assert [r["output"] for r in result["receipts"]] == result["predictions"]
    assert {r["model_hash"] for r in result["receipts"]} == {body["model_hash"]}


def test_classifier_predictions_carry_probabilities(client: TestClient) -> None:
    data = dataset(client, CLASSES_CSV)
    body = model(client, data, algorithm="logistic_regression", target="label")
    rows = [{"x1": 1, "x2": 2}, {"x1": 18, "x2": 1}]
    result = client.post(f"/v1/models/{body['model_hash']}/predict", json={"rows": rows}).json()
    assert all(p in ("hi", "lo") for p in result["predictions"])
    assert len(result["probabilities"]) == 2
    for label, probabilities in zip(result["predictions"], result["probabilities"], strict=True):
        assert set(probabilities) == {"hi", "lo"}
        assert sum(probabilities.values()) == pytest.approx(1.0)
        assert max(probabilities, key=probabilities.__getitem__) == label


@pytest.mark.parametrize(
    ("body", "problem", "mentions"),
    [
        ({"rows": [{"x1": 150}]}, "missing-feature", "'x2'"),
        ({"rows": [{"x1": 1, "x2": 2}, {"x2": 2}]}, "missing-feature", "row 1"),
        ({"rows": [{"x1": "150", "x2": 2}]}, "non-numeric-input", "'x1'"),
        ({"rows": [{"x1": None, "x2": 2}]}, "non-numeric-input", "'x1'"),
        ({"rows": []}, "invalid-request", "rows"),
        ({"rows": [[150, 250]]}, "invalid-request", "rows.0"),
        ({"rows": {"x1": 1, "x2": 2}}, "invalid-request", "rows"),
        ({"rows": [{"x1": 1, "x2": 2}], "explain": True}, "invalid-request", "explain"),
        ({}, "invalid-request", "rows"),
    ],
    ids=["missing", "missing-in-row-1", "string", "null", "empty", "list-row", "not-a-list",
         "extra-key", "no-rows"],
)  # fmt: skip
def test_invalid_prediction_input_is_422(
    shared: Shared, body: dict[str, Any], problem: str, mentions: str
) -> None:
    response = shared.client.post(f"/v1/models/{shared.model}/predict", json=body)
    assert mentions in assert_problem(response, 422, problem)["detail"]


def test_non_finite_numbers_are_422(shared: Shared) -> None:
    """Refused at the edge, as every number that is not a finite float64 (issue 19)."""
    for raw in (b'{"rows": [{"x1": NaN, "x2": 2}]}', b'{"rows": [{"x1": 1e999, "x2": 2}]}'):
        response = shared.client.post(
            f"/v1/models/{shared.model}/predict",
            content=raw,
            headers={"content-type": "application/json"},
        )
        assert assert_problem(response, 422, "number-out-of-range")["field"] == "rows[0].x1"


def test_predict_with_an_unknown_model_is_404(client: TestClient) -> None:
    response = client.post(f"/v1/models/{UNKNOWN}/predict", json={"rows": [{"x1": 1, "x2": 2}]})
    assert_problem(response, 404, "unknown-model")


def test_predict_with_a_revoked_model_is_409(client: TestClient) -> None:
    model_hash = model(client, dataset(client))["model_hash"]
    rows = {"rows": [{"x1": 150, "x2": 250}]}
    assert client.post(f"/v1/models/{model_hash}/predict", json=rows).status_code == 200
    revoked = client.post(f"/v1/records/{model_hash}/revoke", json={"reason": "biased"})
    assert revoked.status_code == 200, revoked.text
    refused = client.post(f"/v1/models/{model_hash}/predict", json=rows)
    body = assert_problem(refused, 409, "record-revoked")
    assert model_hash in body["detail"]


def test_a_model_found_live_is_refused_once_revoked_in_the_same_thread(
    client: TestClient,
) -> None:
    """The liveness kept per thread while the index is unchanged: a revocation changes the
    index, so the next look in the very thread that kept it refuses the model; so does one
    of its dataset (taint)."""
    from api.errors import RecordTainted
    from ledger.errors import RecordIsRevoked

    predictions = client.app.state.service.predictions
    data = dataset(client)
    first = model(client, data)["model_hash"]
    second = model(client, data, algorithm="ridge")
    predictions.live(first)
    predictions.live(first)  # kept: the index did not change
    revoked = client.post(f"/v1/records/{first}/revoke", json={"reason": "biased"})
    assert revoked.status_code == 200, revoked.text
    with pytest.raises(RecordIsRevoked):
        predictions.live(first)
    predictions.live(second["model_hash"])
    tainting = client.post(f"/v1/records/{data}/revoke", json={"reason": "consent withdrawn"})
    assert tainting.status_code == 200, tainting.text
    with pytest.raises(RecordTainted):
        predictions.live(second["model_hash"])


class TestLimits:
    """A service with small prediction and JSON limits."""

    @pytest.fixture
    def settings(self, tmp_path: Path) -> Settings:
        return Settings(
            data_dir=tmp_path / "limited",
            anchor_interval=3600,
            max_predict_rows=3,
            max_json_bytes=4096,
        )

    def test_too_many_rows_is_413(self, client: TestClient) -> None:
        model_hash = model(client, dataset(client))["model_hash"]
        url = f"/v1/models/{model_hash}/predict"
        assert client.post(url, json={"rows": [{"x1": 1, "x2": 2}] * 3}).status_code == 200
        response = client.post(url, json={"rows": [{"x1": 1, "x2": 2}] * 4})
        assert assert_problem(response, 413, "too-large")["limit"] == "max_predict_rows"

    def test_json_body_past_max_json_bytes_is_413(self, client: TestClient) -> None:
        model_hash = model(client, dataset(client))["model_hash"]
        body = json.dumps({"rows": [{"x1": 1, "x2": 2, "pad": "p" * 5000}]})
        response = client.post(
            f"/v1/models/{model_hash}/predict",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert assert_problem(response, 413, "too-large")["limit"] == "max_json_bytes"

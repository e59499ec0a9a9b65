"""Every number a client can send, at every numeric field of the API (issue 19, part 4).

A JSON number that is not a finite float64 (an integer beyond ±1.7976931348623157e308, NaN,
±Infinity) is refused once, at the edge, as a 422 ``number-out-of-range`` problem naming the
field, and nothing is recorded; every other number (a 300-digit integer, ``1e308``, ``-0.0``,
``5e-324``) is an ordinary number, refused or accepted by the field's own rules, never a 5xx.

Bodies are sent as JSON text (``json.dumps``, which writes ``NaN`` and ``Infinity`` as Python's
``json`` reads them), so that what the service gets is exactly what a client could send.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.settings import Settings
from tests.api.conftest import assert_problem, authorized_client, train, upload

HUGE_300 = 10**299  # 300 digits: within float64 (1.8e308 has 309), an ordinary number
HUGE_400 = 10**399  # 400 digits: beyond float64
BEYOND = int(sys.float_info.max) + 1  # the first integer past float64's largest finite value
ORDINARY: list[Any] = [HUGE_300, -HUGE_300, int(sys.float_info.max), 1e308, -0.0, 5e-324]
REFUSED: list[Any] = [HUGE_400, -HUGE_400, BEYOND, math.nan, math.inf, -math.inf]


def _id(value: Any) -> str:
    if isinstance(value, int) and abs(value) > 10**20:
        return f"{'-' if value < 0 else ''}int{len(str(abs(value)))}"
    return repr(value)


@dataclass(frozen=True)
class World:
    client: TestClient
    dataset: str  # SALES_CSV: x1, x2, y
    model: str  # linear regression on it
    forest: str  # random forest regressor on it (trees compute in float32)
    receipt: dict[str, Any]  # a receipt the service issued for ``model``

    def snapshot(self) -> tuple[int, dict[str, int]]:
        """What a refused request must not change: the chain's block (every dataset and model
        registration is a transaction) and the receipts issued."""
        block = self.client.get("/v1/chain").json()["latest_block"]
        receipts = self.client.app.state.service.core.receipts.counts()  # type: ignore[attr-defined]
        return block, receipts


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("numbers") / "data"
    settings = Settings(data_dir=data_dir, anchor_interval=3600, anchor_batch_size=10_000)
    with authorized_client(settings) as client:
        dataset = upload(client).json()["content_hash"]
        model = train(client, dataset).json()["model_hash"]
        forest = train(client, dataset, algorithm="random_forest_regressor", params={
            "n_estimators": 3
        }).json()["model_hash"]  # fmt: skip
        answer = client.post(f"/v1/models/{model}/predict", json={"rows": [{"x1": 1, "x2": 2}]})
        yield World(client, dataset, model, forest, answer.json()["receipts"][0])


def _send(world: World, method: str, url: str, body: Any) -> Any:
    return world.client.request(
        method, url, content=json.dumps(body), headers={"content-type": "application/json"}
    )


# Each numeric field of a request body: how to send ``value`` in it, and the field's name as a
# problem gives it.
Request = Callable[[World, Any], tuple[str, str, Any]]
ROW = {"x1": 150, "x2": 250}
BODY_FIELDS: dict[str, tuple[Request, str]] = {
    "predict row": (
        lambda w, v: ("POST", f"/v1/models/{w.model}/predict", {
            "rows": [ROW, ROW, ROW, {"x1": v, "x2": 1}]
        }),
        "rows[3].x1",
    ),
    "predict row, tree model": (
        lambda w, v: ("POST", f"/v1/models/{w.forest}/predict", {"rows": [{"x1": 1, "x2": v}]}),
        "rows[0].x2",
    ),
    "ridge alpha": (
        lambda w, v: ("POST", "/v1/models", {
            "dataset": w.dataset, "algorithm": "ridge", "target": "y", "test_size": 0,
            "params": {"alpha": v},
        }),
        "params.alpha",
    ),
    "ridge tol": (
        lambda w, v: ("POST", "/v1/models", {
            "dataset": w.dataset, "algorithm": "ridge", "target": "y", "test_size": 0,
            "params": {"tol": v},
        }),
        "params.tol",
    ),
    # Ridge's default solver (cholesky) never iterates: a huge max_iter costs nothing here,
    # whatever cap ml.training puts on it.
    "ridge max_iter": (
        lambda w, v: ("POST", "/v1/models", {
            "dataset": w.dataset, "algorithm": "ridge", "target": "y", "test_size": 0,
            "params": {"max_iter": v},
        }),
        "params.max_iter",
    ),
    "test_size": (
        lambda w, v: ("POST", "/v1/models", {
            "dataset": w.dataset, "algorithm": "linear_regression", "target": "y", "test_size": v,
        }),
        "test_size",
    ),
    "seed": (
        lambda w, v: ("POST", "/v1/models", {
            "dataset": w.dataset, "algorithm": "linear_regression", "target": "y", "test_size": 0,
            "seed": v,
        }),
        "seed",
    ),
    "clip_outliers factor": (
        lambda w, v: ("POST", f"/v1/datasets/{w.dataset}/derive", {
            "steps": [{"step": "drop_missing"}, {"step": "clip_outliers", "factor": v}]
        }),
        "steps[1].factor",
    ),
    "clip_outliers zscore factor": (
        lambda w, v: ("POST", f"/v1/datasets/{w.dataset}/derive", {
            "steps": [{"step": "clip_outliers", "method": "zscore", "factor": v}]
        }),
        "steps[0].factor",
    ),
    "filter_rows value": (
        lambda w, v: ("POST", f"/v1/datasets/{w.dataset}/derive", {
            "steps": [{"step": "filter_rows", "column": "x1", "op": "<=", "value": v}]
        }),
        "steps[0].value",
    ),
}  # fmt: skip
# Receipts to verify are evidence, not numbers to compute with: a bad number in one is a finding
# in its report (or a malformed receipt), never a refusal of the auditor's request.
EVIDENCE_FIELDS: dict[str, tuple[Request, str]] = {
    "receipt issued_at": (
        lambda w, v: ("POST", "/v1/verify/receipt", {"receipt": {**w.receipt, "issued_at": v}}),
        "receipt.issued_at",
    ),
    "receipt output": (
        lambda w, v: ("POST", "/v1/verify/receipt", {"receipt": {**w.receipt, "output": v}}),
        "receipt.output",
    ),
    "re-run input": (
        lambda w, v: ("POST", "/v1/verify/receipt", {
            "receipt": w.receipt, "input": {"x1": v, "x2": 2}, "rerun": True
        }),
        "input.x1",
    ),
}  # fmt: skip


@pytest.mark.parametrize("value", REFUSED, ids=_id)
@pytest.mark.parametrize("label", sorted(BODY_FIELDS))
def test_a_number_beyond_float64_is_refused_at_the_edge_naming_its_field(
    world: World, label: str, value: Any
) -> None:
    request, field = BODY_FIELDS[label]
    before = world.snapshot()
    response = _send(world, *request(world, value))
    body = assert_problem(response, 422, "number-out-of-range")
    assert body["field"] == field
    assert body["detail"].startswith(f"{field}: ")
    assert "float64" in body["detail"] or "NaN" in body["detail"]
    assert world.snapshot() == before, "a refused request changed something"


@pytest.mark.parametrize("value", ORDINARY, ids=_id)
@pytest.mark.parametrize("label", sorted(BODY_FIELDS))
def test_an_ordinary_extreme_number_is_never_a_server_error(
    world: World, label: str, value: Any
) -> None:
    """A 300-digit integer, 1e308, -0.0 and 5e-324 are float64 numbers: each field takes or
    refuses them by its own rules (a cap, a bound, float32 for trees), never with a 5xx and
    never as ``number-out-of-range``."""
    request, _ = BODY_FIELDS[label]
    response = _send(world, *request(world, value))
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["type"] != "urn:provenance-ledger:problem:number-out-of-range"


@pytest.mark.parametrize("value", REFUSED + ORDINARY, ids=_id)
@pytest.mark.parametrize("label", sorted(EVIDENCE_FIELDS))
def test_a_bad_number_in_a_receipt_to_verify_is_a_finding(
    world: World, label: str, value: Any
) -> None:
    request, _ = EVIDENCE_FIELDS[label]
    before = world.snapshot()
    response = _send(world, *request(world, value))
    assert world.snapshot() == before
    if response.status_code == 200:
        assert response.json()["verdict"] == "invalid", response.text
    else:
        assert_problem(response, 422, "malformed-receipt")


@pytest.mark.parametrize("value", [-0.0, 5e-324])
def test_minus_zero_and_a_denormal_are_ordinary_inputs(world: World, value: float) -> None:
    for model in (world.model, world.forest):
        response = _send(world, "POST", f"/v1/models/{model}/predict", {
            "rows": [{"x1": value, "x2": value}]
        })  # fmt: skip
        assert response.status_code == 200, response.text
    response = _send(world, "POST", "/v1/models", {
        "dataset": world.dataset, "algorithm": "ridge", "target": "y", "test_size": value,
        "seed": 0, "params": {"alpha": value},
    })  # fmt: skip
    assert response.status_code in (200, 201), response.text
    response = _send(world, "POST", f"/v1/datasets/{world.dataset}/derive", {
        "steps": [{"step": "clip_outliers", "factor": 5e-324}]
    })  # fmt: skip
    # 409: the same bytes may already be registered, derived by another test's steps.
    assert response.status_code in (200, 201, 409), response.text


def test_a_nested_hyperparameter_is_named_by_its_path(world: World) -> None:
    before = world.snapshot()
    response = _send(world, "POST", "/v1/models", {
        "dataset": world.dataset, "algorithm": "mlp_regressor", "target": "y",
        "params": {"hidden_layer_sizes": [4, HUGE_400]},
    })  # fmt: skip
    body = assert_problem(response, 422, "number-out-of-range")
    assert body["field"] == "params.hidden_layer_sizes[1]"
    assert world.snapshot() == before


def test_every_refused_number_is_listed_in_document_order(world: World) -> None:
    rows = [{"x1": HUGE_400, "x2": 1}, {"x1": 1, "x2": math.nan}]
    body = assert_problem(
        _send(world, "POST", f"/v1/models/{world.model}/predict", {"rows": rows}),
        422,
        "number-out-of-range",
    )
    assert [e["loc"] for e in body["errors"]] == [
        ["body", "rows", 0, "x1"],
        ["body", "rows", 1, "x2"],
    ]


@pytest.mark.parametrize(("model", "words"), [
    ("forest", "the float32 range (±3.403e+38) that tree models compute in"),
    ("model", "the range the service accepts for prediction inputs (±3.403e+38, float32's)"),
])  # fmt: skip
def test_a_row_beyond_float32_says_which_range_and_why(
    world: World, model: str, words: str
) -> None:
    before = world.snapshot()
    response = _send(world, "POST", f"/v1/models/{getattr(world, model)}/predict", {
        "rows": [{"x1": 1e39, "x2": 1}]
    })  # fmt: skip
    body = assert_problem(response, 422, "invalid-input")
    assert words in body["detail"]
    assert "x1" in body["detail"]
    if model == "model":
        assert "tree" not in body["detail"]
    assert world.snapshot() == before


QUERY_VALUES = [str(HUGE_300), str(HUGE_400), "9" * 5000, "1e308", "-0.0", "5e-324", "NaN",
                "Infinity", "-Infinity"]  # fmt: skip


@pytest.mark.parametrize("value", QUERY_VALUES, ids=lambda v: v[:12])
@pytest.mark.parametrize("parameter", ["offset", "limit"])
def test_paging_parameters_take_any_string_without_a_server_error(
    world: World, parameter: str, value: str
) -> None:
    """Query parameters are not JSON numbers: each is an integer within its declared bounds,
    and anything else is an ``invalid-request`` naming it."""
    for path in ("/v1/models", "/v1/datasets"):
        response = world.client.get(path, params={parameter: value})
        if value == "-0.0" and parameter == "offset":
            assert response.status_code == 200, response.text
            continue
        body = assert_problem(response, 422, "invalid-request")
        assert f"query.{parameter}" in body["detail"]


@pytest.mark.parametrize("value", [str(HUGE_400), "9" * 5000, "-0.0", "5e-324", "NaN"])
def test_a_row_index_takes_any_string_without_a_server_error(world: World, value: str) -> None:
    """``-0.0`` is row 0 (an ordinary number); a huge index is no row; the rest no integer."""
    response = world.client.get(f"/v1/datasets/{world.dataset}/rows/{value}/proof")
    expected = {"-0.0": 200, str(HUGE_400): 404}.get(value, 422)
    assert response.status_code == expected, response.text


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", str(HUGE_400)])
def test_json_rpc_refuses_a_number_it_could_not_echo(world: World, literal: str) -> None:
    """A JSON-RPC id is echoed: ``NaN`` used to be a 500 (the answer could not be encoded)."""
    text = f'{{"jsonrpc": "2.0", "id": {literal}, "method": "eth_blockNumber", "params": []}}'
    response = world.client.post("/rpc", content=text, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["error"]["code"] == -32700


def test_a_body_past_pythons_integer_digits_is_a_client_error(world: World) -> None:
    text = f'{{"rows": [{{"x1": {"9" * 5000}, "x2": 1}}]}}'
    response = world.client.post(
        f"/v1/models/{world.model}/predict", content=text,
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert 400 <= response.status_code < 500, response.text

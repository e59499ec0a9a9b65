"""Issue 24, the CLI and the API's errors for daily use: each case a new user met, shown fixed.

CLI: ``revoke`` and ``anchor``, receipt ids in ``predict``'s plain output, ``REVOKED`` with its
reason in ``lineage``, exit 4 for an input that cannot be read (1 stays "invalid"), the flag the
user typed in a node error, ``demo`` that cleans up after itself and ``demo --url`` through a
running service.

API: a spreadsheet named as one, another delimiter named, ``null`` shown as ``null``, a header
that looks like data warned about, an unknown feature refused naming it, the bare receipt
accepted by ``POST /v1/verify/receipt``, taint on model answers, a revoked file's re-upload
answered with its revocation, a dataset named after its file.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.cli import app
from tests.api.conftest import assert_problem, train, upload
from tests.api.test_cli import cli, cli_json, runner
from tests.api.test_server_e2e import serve

SALES = "x1,x2,y\n100,200,5000\n200,300,6000\n300,400,7000\n"
IRIS_HEAD = "150,4,setosa,versicolor,virginica\n5.1,3.5,1.4,0.2,0\n4.9,3.0,1.4,0.2,0\n"


# --------------------------------------------------------------------------- the API


def _xlsx() -> bytes:
    """A minimal workbook as Excel writes one: a zip holding ``xl/`` parts."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as book:
        book.writestr("[Content_Types].xml", "<Types/>")
        book.writestr("xl/workbook.xml", "<workbook/>")
        book.writestr("xl/worksheets/sheet1.xml", "<worksheet/>")
    return out.getvalue()


def test_a_spreadsheet_is_named_as_one(client: TestClient) -> None:
    blocks = client.get("/v1/chain").json()["latest_block"]
    body = assert_problem(upload(client, _xlsx()), 422, "spreadsheet")
    assert "export it as CSV" in body["detail"] and ".xlsx" in body["detail"]
    old_excel = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600)
    assert_problem(upload(client, old_excel), 422, "spreadsheet")
    assert client.get("/v1/chain").json()["latest_block"] == blocks


def test_another_delimiter_is_named(client: TestClient) -> None:
    semicolons = "x1;x2;y\n1,5;2;3\n2;3,5;4\n"  # decimal commas make the rows ragged
    body = assert_problem(upload(client, semicolons), 422, "ragged-row")
    assert "separated by semicolons" in body["detail"]
    whole = upload(client, "a;b;c\n1;2;3\n4;5;6\n")  # read as one column: accepted, warned
    assert whole.status_code == 201, whole.text
    assert any("semicolon-separated" in w for w in whole.json()["warnings"])


def test_a_header_that_looks_like_data_is_warned_about(client: TestClient) -> None:
    response = upload(client, IRIS_HEAD)
    assert response.status_code == 201, response.text
    (warning,) = response.json()["warnings"]
    assert "'150', '4'" in warning and "header" in warning
    assert client.get(f"/v1/datasets/{response.json()['content_hash']}").json()["warnings"] == [
        warning
    ]
    assert upload(client, SALES).json()["warnings"] == []


def test_a_dataset_is_named_after_its_file(client: TestClient) -> None:
    response = client.post("/v1/datasets", files={"file": ("wine.csv", SALES)})
    assert response.json()["name"] == "wine.csv"
    named = client.post(
        "/v1/datasets", files={"file": ("x.csv", SALES + "4,5,6\n")}, data={"name": "kept"}
    )
    assert named.json()["name"] == "kept"


@pytest.fixture
def model(client: TestClient) -> dict[str, Any]:
    dataset = upload(client, SALES).json()["content_hash"]
    response = train(client, dataset)
    assert response.status_code == 201, response.text
    return response.json()


def test_null_is_shown_as_null_and_an_unknown_feature_is_refused(
    client: TestClient, model: dict[str, Any]
) -> None:
    url = f"/v1/models/{model['model_hash']}/predict"
    body = assert_problem(client.post(url, json={"rows": [{"x1": None, "x2": 1}]}), 422,
                          "non-numeric-input")  # fmt: skip
    assert "has null for feature 'x1'" in body["detail"]
    body = assert_problem(
        client.post(url, json={"rows": [{"x1": 1, "x2": 2, "x3": 3}]}), 422, "unknown-feature"
    )
    assert "'x3'" in body["detail"] and "'x1', 'x2'" in body["detail"]
    assert client.post(url, json={"rows": [{"x1": 1, "x2": 2}]}).status_code == 200


def test_the_bare_receipt_verifies_as_the_wrapped_one(
    client: TestClient, model: dict[str, Any]
) -> None:
    url = f"/v1/models/{model['model_hash']}/predict"
    receipt_id = client.post(url, json={"rows": [{"x1": 1, "x2": 2}]}).json()["receipts"][0][
        "receipt_id"
    ]
    client.post("/v1/anchor")
    receipt = client.get(f"/v1/receipts/{receipt_id}").json()
    bare = client.post("/v1/verify/receipt", json=receipt)
    wrapped = client.post("/v1/verify/receipt", json={"receipt": receipt})
    assert bare.status_code == wrapped.status_code == 200, bare.text
    assert bare.json() == wrapped.json() and bare.json()["verdict"] == "valid"


def test_model_answers_say_taint_and_a_revoked_file_is_answered_with_its_revocation(
    client: TestClient, model: dict[str, Any]
) -> None:
    assert model["tainted"] is False and model["tainted_by"] is None
    (dataset,) = model["datasets"]
    revoked = client.post(f"/v1/records/{dataset}/revoke", json={"reason": "no consent"})
    assert revoked.status_code == 200, revoked.text
    again = client.get(f"/v1/models/{model['model_hash']}").json()
    assert again["tainted"] is True and again["tainted_by"] == dataset
    body = assert_problem(upload(client, SALES), 409, "record-revoked")
    assert dataset in body["detail"] and "no consent" in body["detail"]


# --------------------------------------------------------------------------- the CLI


def test_revoke_anchor_predict_and_lineage_from_the_cli(tmp_path: Path) -> None:
    data = ("--data-dir", str(tmp_path / "data"))
    sales = tmp_path / "sales.csv"
    sales.write_text(SALES)
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([{"x1": 1, "x2": 2}]))
    dataset = cli_json("dataset", "register", sales, *data)["content_hash"]
    model = cli_json("model", "train", "--dataset", dataset, "--algorithm",
                     "linear_regression", "--target", "y", "--test-size", "0", *data)  # fmt: skip
    predicted = cli("predict", model["model_hash"], "--rows", rows, *data).stdout
    receipt_id = cli_json("predict", model["model_hash"], "--rows", rows, *data)["receipts"][0][
        "receipt_id"
    ]
    assert "row 0: " in predicted and " receipt 0x" in predicted
    anchored = cli("anchor", *data).stdout
    assert "batch 0x" in anchored and "receipt(s), block" in anchored
    assert receipt_id
    assert "nothing to anchor" in cli("anchor", *data).stdout
    revoked = cli("revoke", dataset, "--reason", "no consent", *data).stdout
    assert f"dataset {dataset} REVOKED in block" in revoked and "no consent" in revoked
    graph = cli("lineage", model["model_hash"], "--direction", "up", *data).stdout
    assert f"{dataset} REVOKED: no consent" in graph
    assert f"{model['model_hash']} TAINTED" in graph


def test_unreadable_input_and_invalid_have_distinct_exit_codes(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = cli("verify", broken, "--rpc-url", "http://127.0.0.1:9", code=4)
    assert "not a readable JSON file" in result.stderr
    not_a_receipt = tmp_path / "other.json"
    not_a_receipt.write_text(json.dumps({"receipt": {"hello": 1}, "ledger": {"contract": "0x"}}))
    cli("verify", not_a_receipt, "--rpc-url", "http://127.0.0.1:9", code=4)


def test_an_unreachable_node_names_the_flag_typed(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.json"
    receipt = {
        "receipt_id": "0x" + "11" * 32, "model_hash": "0x" + "22" * 32,
        "input_hash": "0x" + "33" * 32, "output": 1, "output_hash": "0x" + "44" * 32,
        "issued_at": 1, "service": "0x" + "55" * 20, "signature": "0x" + "66" * 65,
    }  # fmt: skip
    contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    bundle.write_text(json.dumps(receipt))
    result = cli("verify", bundle, "--rpc-url", "http://127.0.0.1:9", "--contract", contract,
                 code=2)  # fmt: skip
    assert "--rpc-url http://127.0.0.1:9" in result.stderr
    assert "PROVENANCE_RPC_URL" not in result.stderr


def test_demo_cleans_up_and_demo_url_runs_through_a_running_service(tmp_path: Path) -> None:
    before = set(Path(tempfile.gettempdir()).glob("provenance-demo-*"))
    report = cli_json("demo")
    assert report["verification"]["verdict"] == "valid"
    assert not Path(report["data_dir"]).exists()
    assert set(Path(tempfile.gettempdir()).glob("provenance-demo-*")) == before
    data_dir = tmp_path / "data"
    with serve(data_dir) as url:
        key = (data_dir / "admin.key").read_text().strip()
        result = runner.invoke(app, ["demo", "--url", url, "--api-key", key, "--json"])
        assert result.exit_code == 0, result.stderr
        through = json.loads(result.stdout)
        assert through["service"] == url
        model = through["model"]["model_hash"]
        listed = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"}).json()
        assert model in {m["model_hash"] for m in listed["data"]}


def test_the_dataset_page_shows_the_header_warning(client: TestClient) -> None:
    dataset = upload(client, IRIS_HEAD).json()["content_hash"]
    page = client.get(f"/datasets/{dataset}", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert 'data-field="warning">Check this file: the header looks like data' in page.text
    clean = upload(client, SALES).json()["content_hash"]
    assert 'data-field="warning"' not in client.get(f"/datasets/{clean}").text

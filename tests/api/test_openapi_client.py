"""A client generated from the live OpenAPI document by ``openapi-python-client`` (a tool nobody
here wrote) drives the whole flow: register → derive → train → predict → anchor → verify, the
uploads (single, batch, a dataset and a receipts file to verify), the model file and ``/rpc``.

The generator runs with ``--fail-on-warning``, so an operation it would skip (a response it
cannot type, a schema it cannot read) fails here, and with no post hooks (no ``ruff``, nothing
fetched). Its output goes to a temporary directory and is imported from there; the app runs in
process and the generated client talks to it through a ``TestClient`` (an ``httpx.Client``).
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.settings import Settings
from tests.api.conftest import SALES_CSV, authorized_client

pytest.importorskip(
    "openapi_python_client", reason="openapi-python-client==0.29.1 is not installed"
)

PACKAGE = "generated_ledger_client"
RAW = SALES_CSV + "200,300,6000\n"  # one duplicate row, for the derivation to drop
ROW = {"x1": 150, "x2": 250}


def _sha256(data: bytes | str) -> str:
    return "0x" + hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir = tmp_path_factory.mktemp("generated-client") / "data"
    settings = Settings(data_dir=data_dir, anchor_interval=3600, anchor_batch_size=10_000)
    with authorized_client(settings) as client:
        yield client


@pytest.fixture(scope="module")
def document(service: TestClient) -> dict[str, Any]:
    response = service.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


@pytest.fixture(scope="module")
def generated(
    service: TestClient, document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleType]:
    """The generated package, imported from a temporary directory (and forgotten after)."""
    work = tmp_path_factory.mktemp("openapi-python-client")
    path = work / "openapi.json"
    path.write_text(json.dumps(document))
    config = work / "config.yaml"
    config.write_text("post_hooks: []\n")  # the default runs ruff over the output
    command = [
        sys.executable, "-m", "openapi_python_client", "generate", "--path", str(path),
        "--output-path", str(work / PACKAGE), "--meta", "none", "--config", str(config),
        "--fail-on-warning",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    said = done.stdout + done.stderr
    assert done.returncode == 0 and "WARNING" not in said, said
    sys.path.insert(0, str(work))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(work))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def client(generated: ModuleType, service: TestClient) -> Any:
    """The generated ``AuthenticatedClient`` over the in-process app (which holds the key)."""
    token = service.headers["Authorization"].removeprefix("Bearer ")
    made = generated.AuthenticatedClient(
        base_url=str(service.base_url), token=token, raise_on_unexpected_status=True
    )
    made.set_httpx_client(service)
    return made


def _module_name(operation_id: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", operation_id.lower()).strip("_")


@pytest.fixture(scope="module")
def operation(generated: ModuleType, document: dict[str, Any]) -> Any:
    """``operation("POST /v1/datasets")``: the generated module for that operation."""

    def find(label: str) -> ModuleType:
        method, path = label.split(" ", 1)
        spec = document["paths"][path][method.lower()]
        tag = _module_name(spec["tags"][0])
        return importlib.import_module(f"{PACKAGE}.api.{tag}.{_module_name(spec['operationId'])}")

    return find


def _models(generated: ModuleType) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.models")


def _file(generated: ModuleType, content: bytes | str, name: str, mime: str) -> Any:
    payload = io.BytesIO(content.encode() if isinstance(content, str) else content)
    return generated.types.File(payload=payload, file_name=name, mime_type=mime)


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.content
    return response.parsed


def test_every_operation_is_in_the_generated_client(
    document: dict[str, Any], operation: Any
) -> None:
    for path, item in document["paths"].items():
        for method in item:
            module = operation(f"{method.upper()} {path}")
            assert callable(module.sync_detailed), f"{method} {path}"


def test_every_upload_is_a_binary_file(document: dict[str, Any]) -> None:
    """``format: binary`` on each file field, so generators type it as a file, not ``str``."""
    found = 0

    def walk(node: Any) -> None:
        nonlocal found
        if isinstance(node, dict):
            if node.get("contentMediaType") == "application/octet-stream":
                assert node.get("format") == "binary", node
                found += 1
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert found >= 4  # datasets, datasets/batch, verify/dataset, verify/receipts/file


def test_register_derive_train_predict_verify_through_the_generated_client(
    generated: ModuleType, client: Any, operation: Any
) -> None:
    models = _models(generated)
    csv = _file(generated, RAW, "sales.csv", "text/csv")
    body = models.BodyRegisterDatasetV1DatasetsPost(file=csv, name="sales")
    raw = _ok(operation("POST /v1/datasets").sync_detailed(client=client, body=body), 201)
    assert isinstance(raw, models.DatasetPublic)
    assert raw.content_hash == _sha256(RAW) and raw.row_count == 4

    step = models.DeriveCreateStepsItem(step=models.DeriveCreateStepsItemStep.DROP_DUPLICATES)
    derive = operation("POST /v1/datasets/{content_hash}/derive")
    clean = _ok(
        derive.sync_detailed(
            raw.content_hash, client=client, body=models.DeriveCreate(steps=[step])
        ),
        201,
    )
    assert isinstance(clean, models.DatasetPublic)
    assert clean.parents == [raw.content_hash] and clean.row_count == 3

    content = operation("GET /v1/datasets/{content_hash}/content")
    downloaded = _ok(content.sync_detailed(clean.content_hash, client=client))
    assert _sha256(downloaded) == clean.content_hash

    spec = models.ModelCreate(
        dataset=clean.content_hash,
        algorithm=models.ModelCreateAlgorithm.LINEAR_REGRESSION,
        target="y",
        test_size=0,
    )
    model = _ok(operation("POST /v1/models").sync_detailed(client=client, body=spec), 201)
    assert isinstance(model, models.ModelPublic)
    assert model.datasets == [clean.content_hash]

    model_file = operation("GET /v1/models/{model_hash}/content")
    artifact = _ok(model_file.sync_detailed(model.model_hash, client=client))
    assert isinstance(artifact, generated.types.File)
    assert _sha256(artifact.payload.read()) == model.model_hash

    rows = [models.PredictCreateRowsItem.from_dict(ROW)]
    predict = operation("POST /v1/models/{model_hash}/predict")
    predicted = _ok(
        predict.sync_detailed(model.model_hash, client=client, body=models.PredictCreate(rows=rows))
    )
    assert isinstance(predicted, models.PredictPublic)
    assert len(predicted.predictions) == len(predicted.receipts) == 1
    handed = predicted.receipts[0]
    assert handed.model_hash == model.model_hash

    anchored = _ok(operation("POST /v1/anchor").sync_detailed(client=client))
    assert isinstance(anchored, models.AnchorPublic) and anchored.batches

    receipt = models.ReceiptVerifyCreateReceipt.from_dict(handed.to_dict())
    verify = operation("POST /v1/verify/receipt")
    report = _ok(
        verify.sync_detailed(client=client, body=models.ReceiptVerifyCreate(receipt=receipt))
    )
    assert isinstance(report, models.ReportPublic)
    assert report.verdict == models.ReportPublicVerdict.VALID, report.to_dict()

    upload = models.BodyVerifyDatasetV1VerifyDatasetPost(
        file=_file(generated, RAW, "sales.csv", "text/csv")
    )
    dataset_report = _ok(
        operation("POST /v1/verify/dataset").sync_detailed(client=client, body=upload)
    )
    assert dataset_report.verdict == models.ReportPublicVerdict.VALID, dataset_report.to_dict()

    lines = json.dumps(handed.to_dict()) + "\n"
    receipts_file = models.BodyVerifyReceiptsFileV1VerifyReceiptsFilePost(
        file=_file(generated, lines, "receipts.jsonl", "application/jsonl")
    )
    receipts_report = _ok(
        operation("POST /v1/verify/receipts/file").sync_detailed(client=client, body=receipts_file)
    )
    assert isinstance(receipts_report, models.ReceiptsReportPublic)


def test_a_batch_upload_and_json_rpc_through_the_generated_client(
    generated: ModuleType, client: Any, operation: Any, service: TestClient
) -> None:
    models = _models(generated)
    files = [
        _file(generated, SALES_CSV + f"{400 + i},500,8000\n", f"part{i}.csv", "text/csv")
        for i in range(2)
    ]
    batch = models.BodyRegisterDatasetsV1DatasetsBatchPost(file=files)
    response = operation("POST /v1/datasets/batch").sync_detailed(client=client, body=batch)
    assert response.status_code in (200, 201, 207), response.content
    assert isinstance(response.parsed, models.DatasetBatchPublic)
    assert len(response.parsed.to_dict()["data"]) == 2

    rpc = operation("POST /rpc")
    request = models.JsonRpcRpcPostJsonRpcRequest.from_dict(
        {"jsonrpc": "2.0", "method": "eth_chainId", "params": [], "id": 1}
    )
    answer = _ok(rpc.sync_detailed(client=client, body=request))
    assert isinstance(answer, models.JsonRpcResponse)
    chain_id = service.get("/v1/chain").json()["chain_id"]
    assert int(answer.to_dict()["result"], 16) == chain_id

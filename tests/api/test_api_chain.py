"""The chain endpoint, health, the OpenAPI documents, and what every chain-bound endpoint answers
when the chain is away: 503 problem+json, nothing half-done, and recovery once it is back."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from web3.exceptions import ProviderConnectionError

from api.settings import Settings
from tests.api.conftest import SALES_CSV, assert_problem, train, upload

OTHER_CSV = SALES_CSV + "400,500,8000\n"


def stored_files(settings: Settings) -> list[str]:
    root = settings.data_dir / "artifacts"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# -- GET /v1/chain, /healthz --------------------------------------------------------------------


def test_chain_describes_the_ledger(client: TestClient) -> None:
    service = client.app.state.service  # type: ignore[attr-defined]
    response = client.get("/v1/chain")
    assert response.status_code == 200, response.text
    chain = response.json()
    assert chain["backend"] == "embedded"
    assert chain["chain_id"] == service.core.backend.w3.eth.chain_id
    assert chain["contract_address"] == service.core.client.address
    assert service.core.backend.w3.eth.get_code(chain["contract_address"])  # a contract is there
    assert chain["contract_version"] == service.core.client.version()
    assert chain["contract_version"].count(".") == 2
    assert chain["latest_block"] == service.core.backend.w3.eth.block_number
    assert chain["indexed_block"] == chain["latest_block"]
    assert chain["registrar_has_role"] is True
    assert (chain["confirmations"], chain["deepest_reorg"]) == (0, 0)  # it never reorganises
    assert chain["deepest_reorg_past_final"] is None
    record = upload(client).json()
    after = client.get("/v1/chain").json()
    assert record["registrant"] == after["registrar"] == chain["registrar"]
    assert after["latest_block"] == after["indexed_block"] == record["block_number"]
    assert after["latest_block"] == chain["latest_block"] + 1


def test_healthz_reports_the_chain_head(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    latest = client.get("/v1/chain").json()["latest_block"]
    assert response.json() == {"status": "ok", "latest_block": latest, "problems": []}


def test_reads_need_no_key(client: TestClient) -> None:
    record = upload(client).json()
    anonymous = TestClient(client.app)
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/v1/chain").status_code == 200
    assert anonymous.get(f"/v1/datasets/{record['content_hash']}").json() == record


# -- OpenAPI ------------------------------------------------------------------------------------

ENDPOINTS = {
    ("post", "/v1/datasets"),
    ("get", "/v1/datasets"),
    ("get", "/v1/datasets/{content_hash}"),
    ("get", "/v1/datasets/{content_hash}/content"),
    ("get", "/v1/datasets/{content_hash}/rows/{index}/proof"),
    ("post", "/v1/datasets/{content_hash}/derive"),
    ("post", "/v1/models"),
    ("get", "/v1/models"),
    ("get", "/v1/models/{model_hash}"),
    ("get", "/v1/models/{model_hash}/content"),
    ("post", "/v1/models/{model_hash}/predict"),
    ("post", "/v1/records/{record_hash}/revoke"),
    ("get", "/v1/lineage/{record_hash}"),
    ("get", "/v1/chain"),
    ("get", "/healthz"),
}


def test_openapi_documents_every_endpoint(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Provenance Ledger"
    documented = {(m, p) for p, ops in schema["paths"].items() for m in ops}
    assert documented >= ENDPOINTS
    components = schema["components"]["schemas"]
    assert {"DatasetPublic", "ModelPublic", "ModelCreate", "DeriveCreate"} <= set(components)
    dataset_fields = set(components["DatasetPublic"]["properties"])
    assert dataset_fields >= {
        "content_hash", "rows_root", "row_count", "schema_hash", "columns", "parents",
        "transform_hash", "tx_hash", "block_number", "registrant", "registered_at", "revoked",
    }  # fmt: skip
    model_fields = set(components["ModelPublic"]["properties"])
    assert model_fields >= {"model_hash", "metadata_hash", "metadata", "datasets", "tx_hash"}
    created = schema["paths"]["/v1/datasets"]["post"]["responses"]
    assert {"200", "201"} <= set(created)


def test_docs_answer(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in response.text and "/openapi.json" in response.text


# -- errors that are not the endpoints' own -----------------------------------------------------


def test_unknown_path_and_wrong_method_are_problems(client: TestClient) -> None:
    assert_problem(client.get("/v1/nothing-here"), 404, "not-found")
    assert_problem(client.delete("/v1/chain"), 405, "method-not-allowed")


def test_an_unexpected_error_is_500_without_a_trace(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = client.app.state.service  # type: ignore[attr-defined]

    def broken() -> Any:
        raise RuntimeError("secret internal detail at /srv/app/service.py line 12")

    monkeypatch.setattr(service.admin, "chain", broken)
    body = assert_problem(client.get("/v1/chain"), 500, "internal-error")
    assert "secret" not in str(body) and "RuntimeError" not in str(body)


# -- 503: the chain is away ---------------------------------------------------------------------


@contextmanager
def chain_down(client: TestClient) -> Iterator[None]:
    """Every request to the chain fails as if the node refused the connection: web3's, and
    the embedded backend's in-process sends and reads (``ChainBackend.send_raw`` and its
    kin), which reach the chain without web3."""
    backend = client.app.state.service.core.backend  # type: ignore[attr-defined]

    def refuse(method: str, *_: Any) -> Any:
        raise ProviderConnectionError(f"{method}: connection refused")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(backend.w3.provider, "request_func", lambda *_: refuse)
        for method in ("send_raw", "read_block", "read_receipt", "head_number"):
            patch.setattr(backend, method, functools.partial(refuse, method))
        yield


@pytest.fixture
def ready(client: TestClient) -> dict[str, str]:
    """A registered dataset and model, made while the chain was up."""
    dataset = upload(client, SALES_CSV).json()["content_hash"]
    model = train(client, dataset).json()["model_hash"]
    return {"dataset": dataset, "model": model}


WRITES: dict[str, Callable[[TestClient, dict[str, str]], Any]] = {
    "register": lambda c, r: upload(c, OTHER_CSV),
    "derive": lambda c, r: c.post(
        f"/v1/datasets/{r['dataset']}/derive",
        json={"steps": [{"step": "filter_rows", "column": "x1", "op": ">", "value": 100}]},
    ),
    "train": lambda c, r: train(c, r["dataset"], params={"fit_intercept": False}),
    "revoke": lambda c, r: c.post(f"/v1/records/{r['model']}/revoke", json={"reason": "x"}),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_a_write_while_the_chain_is_away_is_503_and_succeeds_once_it_is_back(
    client: TestClient, ready: dict[str, str], write: str
) -> None:
    do = WRITES[write]
    before = client.get("/v1/chain").json()["latest_block"]
    with chain_down(client):
        body = assert_problem(do(client, ready), 503, "chain-unavailable")
        assert body["title"] == "Service Unavailable"
        assert "connection refused" in body["detail"]
    assert client.get("/v1/chain").json()["latest_block"] == before  # nothing was sent
    retried = do(client, ready)
    assert retried.status_code in (200, 201), retried.text
    assert client.get("/v1/chain").json()["latest_block"] == before + 1  # sent exactly once


@pytest.mark.parametrize("path", ["/v1/chain", "/healthz"])
def test_chain_reads_while_the_chain_is_away_are_503(client: TestClient, path: str) -> None:
    with chain_down(client):
        assert_problem(client.get(path), 503, "chain-unavailable")
    assert client.get(path).status_code == 200


def test_indexed_reads_keep_working_while_the_chain_is_away(
    client: TestClient, ready: dict[str, str]
) -> None:
    with chain_down(client):
        assert client.get(f"/v1/datasets/{ready['dataset']}").status_code == 200
        assert client.get(f"/v1/models/{ready['model']}").status_code == 200
        assert client.get("/v1/datasets").json()["count"] == 1
        assert client.get(f"/v1/datasets/{ready['dataset']}/rows/0/proof").status_code == 200
        assert client.get(f"/v1/lineage/{ready['model']}").status_code == 200
        predicted = client.post(
            f"/v1/models/{ready['model']}/predict", json={"rows": [{"x1": 1, "x2": 2}]}
        )
        assert predicted.status_code == 200  # receipts wait for the chain, answers do not


def test_an_upload_refused_for_the_chain_is_registered_by_its_retry(
    client: TestClient, settings: Settings
) -> None:
    with chain_down(client):
        assert_problem(upload(client, OTHER_CSV), 503, "chain-unavailable")
    assert client.get("/v1/datasets").json()["count"] == 0
    retried = upload(client, OTHER_CSV)
    assert retried.status_code == 201, retried.text
    assert retried.json()["row_count"] == 4
    assert not [f for f in stored_files(settings) if f.startswith("tmp")]


def test_a_closed_chain_is_the_same_503(client: TestClient) -> None:
    client.app.state.service.core.backend.close()  # type: ignore[attr-defined]
    assert_problem(client.get("/healthz"), 503, "chain-unavailable")
    assert_problem(upload(client, OTHER_CSV), 503, "chain-unavailable")

"""The console's pages over HTTP (no browser): every record has a page at a stable URL that
reads without JavaScript, errors asked for as HTML are pages while the API keeps problem+json,
search finds any hash, the view of a lineage lives in its URL, and the assets are the app's."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.console._render import ASSET_VERSIONS, asset_url
from api.service.browse import cut_to_depth
from api.settings import Settings
from ledger.index.lineage import LineageEdge, LineageGraph, LineageNode
from tests.console._world import World, build_world

HTML = {"Accept": "text/html,application/xhtml+xml"}
PROBLEM = "urn:provenance-ledger:problem:"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, World]]:
    data_dir = tmp_path_factory.mktemp("console-pages") / "data"
    settings = Settings(data_dir=data_dir, anchor_interval=3600, anchor_batch_size=10_000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {(data_dir / 'admin.key').read_text().strip()}"
        yield client, build_world(client)


def page(client: TestClient, path: str, status: int = 200) -> str:
    response = client.get(path, headers=HTML, follow_redirects=False)
    assert response.status_code == status, (path, response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("text/html")
    assert "Traceback" not in response.text
    return response.text


def text_of(html: str) -> str:
    """The page's visible text, tags dropped and spaces folded."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_front_page_shows_the_chain_counts_and_recent_records(site: Any) -> None:
    client, world = site
    html = page(client, "/")
    text = text_of(html)
    assert world.chain["contract_address"] in text
    assert f"Chain id {world.chain['chain_id']}" in text
    assert "3 datasets" in text and "3 models" in text and "1 pending" in text
    for record in (world.raw, world.clean, world.loans):
        assert f'href="/datasets/{record}"' in html
    assert f'href="/models/{world.model}"' in html
    assert '<form class="search search--hero" role="search" action="/search"' in html


def test_a_dataset_page_shows_every_field_its_coordinates_and_its_neighbours(site: Any) -> None:
    client, world = site
    dataset = client.get(f"/v1/datasets/{world.clean}").json()
    html = page(client, f"/datasets/{world.clean}")
    for field in ("content_hash", "rows_root", "schema_hash", "metadata_hash", "tx_hash",
                  "registrant", "transform_hash"):  # fmt: skip
        assert dataset[field] in html, field
    text = text_of(html)
    assert f"Block {dataset['block_number']}" in text
    assert "drop_duplicates" in text and "drop_missing" in text
    assert f'href="/datasets/{world.raw}"' in html  # its parent
    assert f'href="/models/{world.model}"' in html and f'href="/models/{world.ridge}"' in html
    for column in dataset["columns"]:
        assert f"<code>{column['name']}</code></td><td>{column['type']}</td>" in html
    assert f'href="/lineage/{world.clean}"' in html
    assert f'href="/v1/datasets/{world.clean}"' in html  # JSON stays at the API path


def test_a_row_proof_has_a_url_and_is_checked_by_the_server(site: Any) -> None:
    client, world = site
    proof = client.get(f"/v1/datasets/{world.clean}/rows/2/proof").json()
    html = page(client, f"/datasets/{world.clean}?row=2")
    assert proof["row_digest"] in html and proof["root"] in html
    assert all(node in html for node in proof["proof"])
    assert "<td>300</td><td>400</td><td>7000</td>" in html
    server_check = re.search(r"This service</th>\s*<td>(.*?)</td>", html, re.S)
    assert server_check and "passed" in server_check.group(1)
    data = re.search(r'<script type="application/json" id="row-proof-data">(.*?)</script>', html)
    assert data and json.loads(data.group(1))["proof"] == proof
    out_of_range = page(client, f"/datasets/{world.clean}?row=3")
    assert "row 3 is out of range 0..2" in out_of_range


def test_a_model_page_shows_its_training_and_its_batches(site: Any) -> None:
    client, world = site
    model = client.get(f"/v1/models/{world.model}").json()
    html = page(client, f"/models/{world.model}")
    text = text_of(html)
    meta = model["metadata"]
    assert "linear_regression" in text and meta["estimator"] in text
    assert "Test size 0.0" in text and "Seed 0" in text
    for metric in meta["metrics"]:
        assert f"<code>{metric}</code>" in html
    for param in meta["params"]:
        assert f"<code>{param}</code>" in html
    assert f'href="/datasets/{world.clean}"' in html
    for receipt in (world.receipt, world.later, world.revoked_batch_receipt):
        assert f'href="/batches/{receipt["batch_id"]}"' in html
    assert 'class="banner' not in html


def test_revocation_and_taint_banners(site: Any) -> None:
    client, world = site
    revoked = text_of(page(client, f"/datasets/{world.loans}"))
    assert "This dataset is revoked" in revoked and "collected without consent" in revoked
    tainted = page(client, f"/models/{world.loans_model}")
    assert "Tainted: built on a revoked dataset" in tainted
    assert f'href="/datasets/{world.loans}"' in tainted and "collected without consent" in tainted
    batch = text_of(page(client, f"/batches/{world.revoked_batch_receipt['batch_id']}"))
    assert "This batch is revoked" in batch and "anchored by mistake" in batch
    receipt = text_of(page(client, f"/receipts/{world.loans_receipt['receipt_id']}"))
    assert "Tainted: built on a revoked dataset" in receipt
    ridge = text_of(page(client, f"/receipts/{world.ridge_receipt['receipt_id']}"))
    assert "Its model is revoked" in ridge and "over-regularised" in ridge


def test_a_receipt_page_reads_without_javascript(site: Any) -> None:
    client, world = site
    receipt = world.receipt
    html = page(client, f"/receipts/{receipt['receipt_id']}")
    for field in ("receipt_id", "input_hash", "output_hash", "signature", "leaf", "tx_hash"):
        assert receipt[field] in html, field
    assert f'href="/batches/{receipt["batch_id"]}"' in html
    assert f'data-bundle-url="/v1/receipts/{receipt["receipt_id"]}/bundle"' in html
    assert '<form class="verifier" id="verifier" action="/verify" method="post"' in html
    pending = text_of(page(client, f"/receipts/{world.pending['receipt_id']}"))
    assert "not anchored yet" in pending


def test_the_verify_page_answers_a_posted_form_with_the_services_report(site: Any) -> None:
    client, world = site
    html = page(client, "/verify")
    assert 'name="document"' in html and 'name="rpc_url"' in html
    answer = client.post("/verify", data={"document": json.dumps(world.bundle)}, headers=HTML)
    assert answer.status_code == 200
    assert 'class="verdict verdict--valid"' in answer.text
    assert 'data-check="input_hash"' in answer.text  # the bundle's input was used
    tampered = {**world.receipt, "output": 1.5}
    answer = client.post("/verify", data={"document": json.dumps(tampered)}, headers=HTML)
    assert 'class="verdict verdict--invalid"' in answer.text
    refused = client.post("/verify", data={"document": "{not json"}, headers=HTML)
    assert refused.status_code == 422 and "not JSON" in refused.text
    linked = page(client, f"/verify?receipt={world.receipt['receipt_id']}")
    assert 'class="verdict verdict--valid"' in linked


def test_search_takes_any_hash(site: Any) -> None:
    client, world = site

    def goes_to(query: str) -> str:
        response = client.get("/search", params={"q": query}, headers=HTML, follow_redirects=False)
        assert response.status_code == 303, response.text
        return response.headers["location"]

    assert goes_to(world.raw) == f"/datasets/{world.raw}"
    assert goes_to(world.model.upper().replace("0X", "0x")) == f"/models/{world.model}"
    assert goes_to(world.receipt["batch_id"]) == f"/batches/{world.receipt['batch_id']}"
    assert goes_to(world.receipt["receipt_id"]) == f"/receipts/{world.receipt['receipt_id']}"
    # The anchoring transaction: several models' batches may share it (anchorPredictionBatches),
    # then the search lists what it wrote instead of redirecting to one record.
    found = client.get("/search", params={"q": world.receipt["tx_hash"]}, headers=HTML,
                       follow_redirects=False)  # fmt: skip
    batch_page = f"/batches/{world.receipt['batch_id']}"
    if found.status_code == 303:
        assert found.headers["location"] == batch_page
    else:
        assert found.status_code == 200 and f'href="{batch_page}"' in found.text
    dataset_tx = client.get(f"/v1/datasets/{world.loans}").json()["tx_hash"]
    assert goes_to(dataset_tx) == f"/datasets/{world.loans}"
    assert "nothing on this ledger" in page(client, "/search?q=0x" + "12" * 32, 404)
    assert "Nothing matches" in page(client, "/search?q=hello")  # a name: the results page
    assert goes_to(" ") == "/"


def test_errors_are_pages_for_browsers_and_problems_for_the_api(site: Any) -> None:
    client, _ = site
    html = page(client, "/datasets/0x" + "ab" * 32, 404)
    assert '<h1 id="page-title">Not found</h1>' in html
    assert "no dataset is registered" in html
    assert "is not a dataset hash" in page(client, "/datasets/nothex", 404)
    assert "Not found" in page(client, "/no/such/page", 404)
    for path, accept in (
        ("/no/such/page", "application/json"),
        ("/datasets/0x" + "ab" * 32, "*/*"),
        ("/v1/datasets/0x" + "ab" * 32, "text/html"),  # an API path: problem+json whatever
        ("/v1/nothing", "text/html"),
    ):
        response = client.get(path, headers={"Accept": accept})
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/problem+json"), path
        assert response.json()["type"].startswith(PROBLEM), path


def test_lineage_pages_keep_direction_and_depth_in_the_url(site: Any) -> None:
    client, world = site
    html = page(client, f"/lineage/{world.raw}?direction=down&depth=1")
    data = json.loads(
        re.search(r'<script type="application/json" id="lineage-data">(.*?)</script>', html)[1]
    )
    kinds = sorted(n["kind"] for n in data["nodes"])
    assert kinds == ["dataset", "dataset", "transform"]
    assert 'id="direction-down" name="direction" value="down" checked' in html
    assert 'value="1"' in html
    full = page(client, f"/lineage/{world.raw}?direction=down")
    assert full.count("<tr data-node=") == len(client.get(
        f"/v1/lineage/{world.raw}?direction=down").json()["nodes"])  # fmt: skip
    receipt = page(client, f"/lineage/{world.receipt['receipt_id']}")
    assert f'data-node="receipt:{world.receipt["receipt_id"]}"' in receipt
    assert f'href="/models/{world.model}"' in receipt
    page(client, f"/lineage/{world.raw}?direction=sideways", 422)


def test_cut_to_depth_counts_record_hops_and_keeps_the_activities_between() -> None:
    def node(node_id: str, kind: str) -> LineageNode:
        return LineageNode(node_id, kind, node_id, None, False, False)  # type: ignore[arg-type]

    nodes = [node("batch:b", "batch"), node("model:m", "model"), node("training:m", "training"),
             node("dataset:d", "dataset"), node("transform:t:d", "transform"),
             node("dataset:r", "dataset")]  # fmt: skip
    edges = [LineageEdge("batch:b", "model:m", "wasDerivedFrom"),
             LineageEdge("model:m", "dataset:d", "wasDerivedFrom"),
             LineageEdge("model:m", "training:m", "wasGeneratedBy"),
             LineageEdge("training:m", "dataset:d", "used"),
             LineageEdge("dataset:d", "dataset:r", "wasDerivedFrom"),
             LineageEdge("dataset:d", "transform:t:d", "wasGeneratedBy"),
             LineageEdge("transform:t:d", "dataset:r", "used")]  # fmt: skip
    graph = LineageGraph("batch:b", "up", tuple(nodes), tuple(edges))
    ids = lambda g: {n.id for n in g.nodes}  # noqa: E731
    assert ids(cut_to_depth(graph, 0)) == {"batch:b"}
    assert ids(cut_to_depth(graph, 1)) == {"batch:b", "model:m"}
    assert ids(cut_to_depth(graph, 2)) == {"batch:b", "model:m", "training:m", "dataset:d"}
    assert cut_to_depth(graph, 3) == graph
    assert all(
        e.source in ids(cut_to_depth(graph, 2)) and e.target in ids(cut_to_depth(graph, 2))
        for e in cut_to_depth(graph, 2).edges
    )


def test_assets_are_served_by_the_app_with_their_version(site: Any) -> None:
    client, _ = site
    swagger_ui = {"swagger-ui-bundle.js", "swagger-ui.css"}  # /docs, from swagger-ui-dist
    licences = {"swagger-ui-bundle.js.LICENSE.txt", "swagger-ui.LICENSE.txt"}
    assert set(ASSET_VERSIONS) == {"console.css", "lineage.js", "verify.js", *swagger_ui, *licences}
    static = Path(__file__).resolve().parents[2] / "api" / "console" / "static"
    for name in ASSET_VERSIONS:
        response = client.get(asset_url(name))
        assert response.status_code == 200
        assert response.content == (static / name).read_bytes()
        assert "immutable" in response.headers["cache-control"]
        again = client.get(f"/static/{name}", headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/missing.js").status_code == 404
    home = client.get("/", headers=HTML)
    assert "script-src 'self'" in home.headers["content-security-policy"]
    assert home.headers["server-timing"].startswith("app;dur=")
    assert "cdn" not in home.text.lower() and "https://" not in home.text


def test_console_pages_stay_out_of_the_openapi_document(site: Any) -> None:
    client, _ = site
    paths = client.get("/openapi.json").json()["paths"]
    console = ("/datasets", "/models", "/batches", "/receipts", "/lineage", "/verify", "/static")
    assert not any(p.startswith(console) or p in ("/", "/search") for p in paths)

"""The list pages, search and the batch's receipts over HTTP (no browser): every record of a
kind a page at a time, filtered by name and status and sorted by time in the URL query; search by
name, file name and hash prefix; a batch of 2,000 receipts paged."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from tests.console._lists_world import BIG_BATCH, ListsWorld, build_lists_world
from tests.console.test_pages import page

HREF = re.compile(r'<tr data-hash="(0x[0-9a-f]{64})"')


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, ListsWorld]]:
    data_dir = tmp_path_factory.mktemp("console-lists") / "data"
    settings = Settings(data_dir=data_dir, anchor_interval=3600, anchor_batch_size=10_000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {(data_dir / 'admin.key').read_text().strip()}"
        yield client, build_lists_world(client)


def rows(html: str) -> list[str]:
    return HREF.findall(html)


def test_the_datasets_page_lists_filters_and_sorts(site: Any) -> None:
    client, world = site
    newest = rows(page(client, "/datasets"))
    assert newest == [world.iris_clean, world.wine_clean, world.iris, world.wine]
    assert rows(page(client, "/datasets?sort=oldest")) == newest[::-1]
    assert rows(page(client, "/datasets?q=WINE")) == [world.wine]
    assert rows(page(client, "/datasets?q=iris.csv")) == [world.iris]  # by its file name
    assert rows(page(client, "/datasets?status=revoked")) == [world.iris]
    assert rows(page(client, "/datasets?status=standing")) == [world.wine_clean, world.wine]
    assert rows(page(client, "/datasets?status=tainted")) == [world.iris_clean]
    assert rows(page(client, f"/datasets?q={world.wine[:10]}")) == [world.wine]
    html = page(client, "/datasets?q=nothing-like-this")
    assert rows(html) == [] and "No datasets match these filters" in html
    page(client, "/datasets?status=lost", status=422)


def test_the_models_and_batches_pages(site: Any) -> None:
    client, world = site
    assert rows(page(client, "/models")) == [world.iris_model, world.wine_model]
    assert rows(page(client, "/models?status=tainted")) == [world.iris_model]
    assert rows(page(client, "/models?q=logistic")) == [world.iris_model]
    assert rows(page(client, "/batches")) == [world.batch]
    assert rows(page(client, "/batches?status=tainted")) == []
    assert f'href="/batches/{world.batch}"' in page(client, "/batches")


def test_search_answers_a_results_page_for_a_name_and_a_hash_prefix(site: Any) -> None:
    client, world = site
    html = page(client, "/search?q=wine")
    assert rows(html) == [world.wine] and "is not a hash" not in html
    assert world.wine_model not in rows(html)
    assert rows(page(client, "/search?q=linear_regression")) == [world.wine_model]
    assert rows(page(client, f"/search?q={world.iris_model[:12]}")) == [world.iris_model]
    assert rows(page(client, "/search?q=0x1")) == []  # too short a prefix to mean a hash
    assert "Nothing matches" in page(client, "/search?q=zzz-not-here")
    whole = client.get(f"/search?q={world.wine}", headers={"Accept": "text/html"},
                       follow_redirects=False)  # fmt: skip
    assert whole.status_code == 303 and whole.headers["location"] == f"/datasets/{world.wine}"


def test_a_batch_page_lists_its_receipts_a_page_at_a_time(site: Any) -> None:
    client, world = site
    first = page(client, f"/batches/{world.batch}")
    assert rows(first) == world.receipt_ids[:100]
    assert f"Page 1 of {BIG_BATCH // 100}" in first
    assert f'href="/batches/{world.batch}?page=2"' in first
    last = page(client, f"/batches/{world.batch}?page={BIG_BATCH // 100}")
    assert rows(last) == world.receipt_ids[-100:]
    assert f'href="/receipts/{world.receipt_ids[-1]}"' in last
    beyond = page(client, f"/batches/{world.batch}?page=999")
    assert rows(beyond) == [] and "No receipts on this page" in beyond

"""The streams pages in a real browser (Debian's Chromium under Playwright): the list, a
stream's page with its figures, versions and dead letters, the way from a version to its
dataset page, and no serious accessibility violation on either page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.devserver import ServiceProcess
from tests.console._browser import axe_violations

COLUMNS = [{"name": "line", "type": "string"}, {"name": "temperature", "type": "float"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Any]]]:
    work = tmp_path_factory.mktemp("console-streams")
    env = {"PROVENANCE_ANCHOR_INTERVAL": "3600"}
    with (
        ServiceProcess(work / "data", env=env) as running,
        httpx.Client(base_url=running.url, headers=running.headers, timeout=60) as http,
    ):
        body = {"name": "line-3", "columns": COLUMNS, "seal_readings": 1000}
        assert http.post("/v1/streams", json=body).status_code == 201
        good = [{"id": f"r{i}", "line": "3", "temperature": 70 + i / 10} for i in range(12)]
        bad = [{"line": "3", "temperature": "hot"}]
        assert http.post("/v1/streams/line-3/readings", json=good[:6] + bad).status_code == 202
        http.post("/v1/streams/line-3/seal")
        assert http.post("/v1/streams/line-3/readings", json=good[6:]).status_code == 202
        [version] = http.post("/v1/streams/line-3/seal").json()["data"]
        yield running.url, version


@pytest.fixture
def tab(browser: Any, server: tuple[str, dict[str, Any]]) -> Iterator[Any]:
    context = browser.new_context(base_url=server[0], viewport={"width": 1280, "height": 900},
                                  bypass_csp=True)  # fmt: skip
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def test_from_the_streams_list_to_a_version_dataset(
    tab: Any, server: tuple[str, dict[str, Any]]
) -> None:
    version = server[1]
    tab.goto("/")
    tab.get_by_role("navigation", name="Main").get_by_role("link", name="Streams").click()
    tab.wait_for_load_state()
    row = tab.locator("table[data-streams] tbody tr")
    assert row.count() == 1
    assert row.locator("td").first.inner_text() == "12"  # readings
    assert axe_violations(tab) == []

    row.get_by_role("link", name="line-3").click()
    tab.wait_for_load_state()
    assert tab.locator("#page-title").inner_text() == "line-3"
    assert tab.locator("[data-readings]").inner_text() == "12"
    assert tab.locator("[data-dead-count]").inner_text() == "1"
    assert "temperature" in tab.locator("table[data-dead-letters] [data-reason]").inner_text()
    versions = tab.locator("table[data-versions] tbody tr")
    assert versions.count() == 2
    assert versions.first.locator("td").nth(2).inner_text() == "12"
    assert axe_violations(tab) == []

    versions.first.locator("td").nth(1).get_by_role("link").click()
    tab.wait_for_load_state()
    assert tab.url.endswith(f"/datasets/{version['hash']}")
    assert version["hash"] in tab.content() and version["chunk"]["hash"] in tab.content()


def test_an_unknown_stream_is_a_404_page(tab: Any) -> None:
    response = tab.goto("/streams/nope")
    assert response.status == 404
    assert "nope" in tab.content()

"""List pages, search, a batch of 2,000 receipts and the private console's sign-in, in a real
browser (Debian's Chromium under Playwright) against a service with public reads off.

The service is its own (``PROVENANCE_PUBLIC_READ=false``, the lists world of
:mod:`tests.console._lists_world`), so every page here is reached through the sign-in page: what
a person on a private deployment does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from api.devserver import ServiceProcess
from tests.console._browser import axe_violations
from tests.console._lists_world import BIG_BATCH, ListsWorld, build_lists_world

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Private:
    url: str
    world: ListsWorld
    admin: httpx.Client


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    work = tmp_path_factory.mktemp("console-private")
    env = {"PROVENANCE_ANCHOR_INTERVAL": "3600", "PROVENANCE_ANCHOR_BATCH_SIZE": "10000",
           "PROVENANCE_PUBLIC_READ": "false"}  # fmt: skip
    server = ServiceProcess(work / "data", env=env)
    try:
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=120) as admin:
            yield Private(server.url, build_lists_world(admin), admin)
    except BaseException:
        print(f"server log {server.log_path}:\n{server.log_tail(20_000)}")
        raise
    finally:
        server.stop(grace=30)


def new_key(private: Private, role: str = "auditor") -> tuple[str, str]:
    response = private.admin.post("/v1/admin/keys", json={"role": role, "name": "browser test"})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["key_id"], body["key"]


@pytest.fixture
def tab(browser: Any, private: Private) -> Iterator[Any]:
    context = browser.new_context(
        base_url=private.url, viewport={"width": 1280, "height": 900}, bypass_csp=True
    )  # bypass_csp: axe-core is injected inline
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def sign_in(tab: Any, key: str, path: str = "/datasets") -> None:
    tab.goto(path)
    assert urlparse(tab.url).path == "/signin"
    tab.fill("#key", key)
    tab.click("form.signin button[type=submit]")
    tab.wait_for_load_state()


def hashes(tab: Any, kind: str) -> list[str]:
    return tab.locator(f"table[data-list={kind}] tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.hash)"
    )


def test_sign_in_keeps_a_read_only_session_cookie(tab: Any, private: Private) -> None:
    _, key = new_key(private, "admin")  # even an admin key's session only reads
    sign_in(tab, key, "/datasets?status=revoked")
    assert urlparse(tab.url).path == "/datasets"
    assert parse_qs(urlparse(tab.url).query) == {"status": ["revoked"]}
    assert hashes(tab, "dataset") == [private.world.iris]
    (cookie,) = tab.context.cookies()
    assert cookie["name"] == "pl_session" and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["expires"] > 0 and key not in cookie["value"] and key[3:20] not in cookie["value"]
    assert tab.evaluate("document.cookie") == ""  # no script reads it
    written = tab.context.request.post("/v1/anchor")
    assert written.status == 403, written.text()  # a session is an auditor: no write
    read = tab.context.request.get(f"/v1/datasets/{private.world.wine}")
    assert read.status == 200  # the verifier's reads work on the session


def test_a_wrong_key_is_refused_on_the_sign_in_page(tab: Any, private: Private) -> None:
    sign_in(tab, "pl_deadbeef_not-a-key")
    assert urlparse(tab.url).path == "/signin"
    assert "unknown or revoked" in tab.locator("[data-signin-error]").inner_text()
    assert tab.context.cookies() == []
    tab.goto("/models")
    assert urlparse(tab.url).path == "/signin"
    assert axe_violations(tab) == []


def test_a_revoked_key_ends_its_session(tab: Any, private: Private) -> None:
    key_id, key = new_key(private)
    sign_in(tab, key, "/models")
    assert hashes(tab, "model") == [private.world.iris_model, private.world.wine_model]
    assert private.admin.delete(f"/v1/admin/keys/{key_id}").status_code == 200
    tab.goto("/models")
    assert urlparse(tab.url).path == "/signin"
    assert tab.locator("[data-session-ended]").is_visible()
    assert tab.context.cookies() == []  # the dead cookie is dropped
    sign_in(tab, key, "/models")  # and the revoked key cannot sign in again
    assert "unknown or revoked" in tab.locator("[data-signin-error]").inner_text()


def test_list_pages_filter_sort_and_link_in_the_browser(tab: Any, private: Private) -> None:
    world = private.world
    sign_in(tab, new_key(private)[1])
    assert hashes(tab, "dataset") == [world.iris_clean, world.wine_clean, world.iris, world.wine]
    assert axe_violations(tab) == []
    tab.select_option("#list-sort", "oldest")
    tab.click("form.filters button[type=submit]")
    tab.wait_for_load_state()
    assert parse_qs(urlparse(tab.url).query)["sort"] == ["oldest"]
    assert hashes(tab, "dataset") == [world.wine, world.iris, world.wine_clean, world.iris_clean]
    tab.fill("#list-q", "wine")
    tab.click("form.filters button[type=submit]")
    tab.wait_for_load_state()
    assert hashes(tab, "dataset") == [world.wine]
    tab.locator(f"tr[data-hash='{world.wine}'] a").first.click()
    tab.wait_for_load_state()
    assert urlparse(tab.url).path == f"/datasets/{world.wine}"
    tab.goto("/models?status=tainted")
    assert hashes(tab, "model") == [world.iris_model]
    tab.goto("/batches")
    assert hashes(tab, "batch") == [world.batch]
    assert axe_violations(tab) == []


def test_search_by_name_answers_a_results_page(tab: Any, private: Private) -> None:
    sign_in(tab, new_key(private)[1], "/")
    tab.fill("#q", "iris")
    tab.press("#q", "Enter")
    tab.wait_for_load_state()
    assert urlparse(tab.url).path == "/search"
    assert hashes(tab, "dataset") == [private.world.iris]
    assert "is not a hash" not in tab.content()
    assert axe_violations(tab) == []


def test_a_batch_of_2000_receipts_is_paged(tab: Any, private: Private) -> None:
    world = private.world
    sign_in(tab, new_key(private)[1], f"/batches/{world.batch}")
    assert hashes(tab, "receipt") == world.receipt_ids[:100]
    assert f"Page 1 of {BIG_BATCH // 100}" in tab.locator(".pager").inner_text()
    assert axe_violations(tab) == []
    tab.click(".pager a[rel=next]")
    tab.wait_for_load_state()
    assert parse_qs(urlparse(tab.url).query) == {"page": ["2"]}
    assert hashes(tab, "receipt") == world.receipt_ids[100:200]
    tab.click(".pager a:text('Last')")
    tab.wait_for_load_state()
    assert hashes(tab, "receipt") == world.receipt_ids[-100:]
    tab.locator("table[data-list=receipt] tbody tr a").first.click()
    tab.wait_for_load_state()
    assert urlparse(tab.url).path == f"/receipts/{world.receipt_ids[-100]}"


# Each node's texts and box, in the node's own coordinates: what "inside" is checked on.
NODE_BOXES = """svg => [...svg.querySelectorAll('.node')].map(n => {
    const box = n.querySelector('rect');
    const w = box.width.baseVal.value, h = box.height.baseVal.value;
    return {id: n.dataset.id, status: n.dataset.status, kind: n.dataset.kind,
            texts: [...n.querySelectorAll('text')].map(t => {
                const b = t.getBBox();
                return [t.textContent, b.x, b.y, b.x + b.width, b.y + b.height];
            }), w, h};
})"""


def outside(nodes: list[dict[str, Any]]) -> list[str]:
    """The labels that reach past their node's border (1px of its stroke allowed)."""
    return [
        f"{node['id']}: {text!r} ends at {right:.1f} of {node['w']:.1f}"
        for node in nodes
        for text, left, top, right, bottom in node["texts"]
        if left < 2 or top < 1 or right > node["w"] - 2 or bottom > node["h"] - 1
    ]


def test_lineage_labels_stay_inside_their_nodes_at_every_status(
    tab: Any, private: Private, tmp_path: Any
) -> None:
    world = private.world
    sign_in(tab, new_key(private)[1], f"/lineage/{world.iris}?direction=both")
    statuses = set()
    for subject in (world.iris, world.receipt_ids[0]):
        tab.goto(f"/lineage/{subject}?direction=both")
        tab.wait_for_selector("[data-lineage][data-ready=true]")
        nodes = tab.locator("[data-lineage] svg").first.evaluate(NODE_BOXES)
        statuses |= {(n["kind"], n["status"]) for n in nodes}
        assert outside(nodes) == []
        # the exported file (which the PNG export draws) keeps them inside too
        with tab.expect_download() as download:
            tab.click("[data-action=export-svg]")
        path = tmp_path / "graph.svg"
        download.value.save_as(path)
        viewer = tab.context.new_page()
        viewer.set_content(f"<!doctype html><body>{path.read_text().split('?>', 1)[1]}</body>")
        assert outside(viewer.locator("svg").first.evaluate(NODE_BOXES)) == []
        viewer.close()
    wanted = {("dataset", "revoked"), ("transform", "tainted"), ("dataset", "tainted"),
              ("training", "tainted"), ("model", "tainted"), ("dataset", "standing"),
              ("transform", "standing"), ("model", "standing"), ("batch", "standing")}  # fmt: skip
    assert wanted <= statuses, wanted - statuses


def test_the_revoked_sign_is_drawn_and_a_derived_dataset_says_so(
    tab: Any, private: Private
) -> None:
    world = private.world
    sign_in(tab, new_key(private)[1], f"/datasets/{world.iris}")
    heading = tab.locator(".banner--revoked h2")
    assert "⛔" not in tab.content()  # an empty box without an emoji font
    icon = heading.locator("svg.icon--revoked")
    box = icon.bounding_box()
    assert box is not None and box["width"] >= 12 and box["height"] >= 12
    tab.goto(f"/datasets/{world.wine_clean}")
    assert tab.locator("[data-field=name]").inner_text() == "derived"
    assert tab.locator("[data-field=origin]").inner_text().startswith("derived from 1 dataset")
    assert tab.locator("h1").inner_text().startswith("Derived dataset")
    tab.goto("/datasets")
    row = tab.locator(f"tr[data-hash='{world.wine_clean}']")
    assert "derived" in row.inner_text()


def test_the_verifier_runs_on_a_session(tab: Any, private: Private) -> None:
    """A receipt page's verifier reads the bundle and /rpc with the session alone."""
    receipt = private.world.receipt_ids[5]
    sign_in(tab, new_key(private)[1], f"/receipts/{receipt}")
    tab.wait_for_selector("#browser-report[data-verdict]", timeout=30_000)
    assert tab.locator("#browser-report").get_attribute("data-verdict") == "valid"

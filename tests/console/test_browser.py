"""The console in a real browser (Debian's Chromium under Playwright) against the real service.

What an auditor sees: the demo receipt verifies as ``valid`` in the browser, a model trained on
revoked data carries the taint banner, the lineage graph draws the expected nodes and edges and
exports as SVG and PNG, and the browser's verifier agrees with ``provenance verify`` on a
genuine, a pending and every tampered receipt. axe-core finds no serious or critical violation
on any page; pages fit a phone's width and work from the keyboard and without JavaScript.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from api.cli import app as cli_app
from tests.console._browser import axe_violations
from tests.console._cases import CASE_NAMES, Case, cases
from tests.console._server import Served

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("isolated_cwd")]

runner = CliRunner(
    env={"PROVENANCE_URL": None, "PROVENANCE_API_KEY": None, "PROVENANCE_DATA_DIR": None}
)
TIMEOUT = 30_000  # ms: a verification makes ~20 JSON-RPC calls to the loopback service


def _browser_report(page: Any) -> dict[str, Any]:
    section = page.locator("#browser-report")
    rows = section.locator("tr[data-check]")
    return {
        "verdict": section.get_attribute("data-verdict"),
        "checks": [
            (row.get_attribute("data-check"), json.loads(row.get_attribute("data-ok")))
            for row in rows.all()
        ],
    }


def _cli_report(path: Path, served: Served, case: Case) -> dict[str, Any] | None:
    args = ["verify", str(path), "--rpc-url", f"{served.url}/rpc", "--json"]
    if case.bare:
        args += ["--contract", served.world.chain["contract_address"]]
    result = runner.invoke(cli_app, args)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    if result.exit_code == 4 and not result.stdout.strip():  # refused: not a receipt
        return None
    assert result.exit_code in (0, 1, 3), (result.exit_code, result.stdout, result.stderr)
    report = json.loads(result.stdout)
    return {
        "verdict": report["verdict"],
        "checks": [(c["name"], c["ok"]) for c in report["checks"]],
    }


def _verify_in_browser(page: Any, document: dict[str, Any], contract: str) -> dict[str, Any] | None:
    page.goto("/verify")
    page.fill("#document", json.dumps(document, indent=2))
    page.fill("#contract", contract)
    page.uncheck("#ask-service")
    page.click("#verifier button[type=submit]")
    page.wait_for_selector("#verifier[data-state=done]", timeout=TIMEOUT)
    error = page.locator("[data-verifier-error]")
    if error.is_visible():
        assert error.get_attribute("data-kind") == "format", error.inner_text()
        return None
    return _browser_report(page)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_the_browser_and_the_cli_agree(
    name: str, page: Any, served: Served, cases_dir: Path
) -> None:
    case = cases(served.world, served.data_dir)[name]
    path = cases_dir / f"{name}.json"
    path.write_text(json.dumps(case.document, indent=2))
    cli = _cli_report(path, served, case)
    contract = served.world.chain["contract_address"] if case.bare else ""
    browser = _verify_in_browser(page, case.document, contract)
    assert browser == cli, f"browser {browser}\ncli     {cli}"
    assert (cli or {}).get("verdict") == case.verdict, cli


def test_the_demo_receipt_page_shows_valid(page: Any, served: Served) -> None:
    receipt = served.world.receipt
    page.goto(f"/receipts/{receipt['receipt_id']}")
    assert page.locator("h1").inner_text().startswith("Receipt")
    page.wait_for_selector("#browser-report[data-verdict]", timeout=TIMEOUT)
    browser = page.locator("#browser-report")
    assert browser.get_attribute("data-verdict") == "valid"
    assert browser.locator("[data-verdict-badge]").inner_text().lower() == "valid"
    assert page.locator("[data-summary-browser]").inner_text().lower() == "valid"
    service = page.locator("#service-report")
    service.wait_for(state="visible")
    assert service.get_attribute("data-verdict") == "valid"
    assert "agree: valid" in browser.locator("[data-where]").inner_text()
    # the bundle was fetched and verified: its input row was checked too
    assert browser.locator("tr[data-check=input_hash]").get_attribute("data-ok") == "true"


def test_a_revoked_datasets_model_page_shows_the_banner(page: Any, served: Served) -> None:
    world = served.world
    page.goto(f"/models/{world.loans_model}")
    banner = page.locator(".banner--tainted")
    assert banner.is_visible()
    text = banner.inner_text()
    assert "revoked dataset" in text and "collected without consent" in text
    assert banner.locator("a").get_attribute("href") == f"/datasets/{world.loans}"
    page.goto(f"/datasets/{world.loans}")
    revoked = page.locator(".banner--revoked")
    assert "This dataset is revoked" in revoked.inner_text()
    assert "collected without consent" in revoked.inner_text()
    page.goto(f"/models/{world.ridge}")
    assert "over-regularised" in page.locator(".banner--revoked").inner_text()
    page.goto(f"/models/{world.model}")
    assert page.locator(".banner").count() == 0


def test_the_lineage_graph_shows_the_expected_nodes_and_edges(page: Any, served: Served) -> None:
    world = served.world
    receipt = world.receipt
    page.goto(f"/lineage/{receipt['receipt_id']}")
    page.wait_for_selector("[data-lineage][data-ready=true]")
    ids = set(page.locator("svg .node").evaluate_all("ns => ns.map(n => n.dataset.id)"))
    batch, model = receipt["batch_id"], world.model
    transform = page.locator(".node--transform").get_attribute("data-id")
    assert transform.endswith(world.clean)
    assert ids == {
        f"receipt:{receipt['receipt_id']}", f"batch:{batch}", f"model:{model}",
        f"training:{model}", f"dataset:{world.clean}", f"dataset:{world.raw}", transform,
    }  # fmt: skip
    drawn = page.locator("svg .edge").evaluate_all(
        "es => es.map(e => [e.dataset.source, e.dataset.target, e.dataset.relation])"
    )
    edges = {tuple(edge) for edge in drawn}
    assert edges == {
        (f"receipt:{receipt['receipt_id']}", f"batch:{batch}", "wasDerivedFrom"),
        (f"batch:{batch}", f"model:{model}", "wasDerivedFrom"),
        (f"model:{model}", f"training:{model}", "wasGeneratedBy"),
        (f"training:{model}", f"dataset:{world.clean}", "used"),
        (f"dataset:{world.clean}", transform, "wasGeneratedBy"),
        (transform, f"dataset:{world.raw}", "used"),
    }
    # each node links through to its page
    page.locator(f'svg .node[data-id="model:{model}"]').click()
    page.wait_for_url(f"**/models/{model}")
    # depth and direction are in the URL
    page.goto(f"/lineage/{world.raw}?direction=down&depth=1")
    page.wait_for_selector("[data-lineage][data-ready=true]")
    kinds = page.locator("svg .node").evaluate_all("ns => ns.map(n => n.dataset.kind)")
    assert sorted(kinds) == ["dataset", "dataset", "transform"]
    assert page.locator("#direction-down").is_checked()
    assert page.locator("#depth").input_value() == "1"
    # the revoked and the tainted are marked
    page.goto(f"/lineage/{world.loans}?direction=down")
    page.wait_for_selector("[data-lineage][data-ready=true]")
    assert (
        page.locator(f'svg .node[data-id="dataset:{world.loans}"]').get_attribute("data-status")
        == "revoked"
    )
    assert (
        page.locator(f'svg .node[data-id="model:{world.loans_model}"]').get_attribute("data-status")
        == "tainted"
    )


def test_the_graph_exports_as_svg_and_png(page: Any, served: Served, tmp_path: Path) -> None:
    world = served.world
    page.goto(f"/lineage/{world.model}")
    page.wait_for_selector("[data-lineage][data-ready=true]")
    with page.expect_download() as svg_download:
        page.click("[data-action=export-svg]")
    svg_path = tmp_path / "graph.svg"
    svg_download.value.save_as(svg_path)
    assert svg_download.value.suggested_filename.endswith(".svg")
    tree = ET.parse(svg_path)
    nodes = [a.get("data-id") for a in tree.iter("{http://www.w3.org/2000/svg}a")]
    assert f"model:{world.model}" in nodes and f"dataset:{world.raw}" in nodes
    with page.expect_download() as png_download:
        page.click("[data-action=export-png]")
    png_path = tmp_path / "graph.png"
    png_download.value.save_as(png_path)
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_row_proof_checks_out_in_the_browser(page: Any, served: Served) -> None:
    page.goto(f"/datasets/{served.world.clean}?row=1")
    mark = page.locator("[data-browser-mark][data-ok]")
    mark.wait_for(timeout=TIMEOUT)
    assert mark.get_attribute("data-ok") == "true", page.locator(
        "[data-browser-detail]"
    ).inner_text()


def _pages(served: Served) -> dict[str, str]:
    world = served.world
    return {
        "home": "/",
        "dataset": f"/datasets/{world.clean}?row=0",
        "revoked dataset": f"/datasets/{world.loans}",
        "model": f"/models/{world.loans_model}",
        "batch": f"/batches/{world.revoked_batch_receipt['batch_id']}",
        "receipt": f"/receipts/{world.receipt['receipt_id']}",
        "lineage": f"/lineage/{world.receipt['receipt_id']}?direction=both",
        "verify": "/verify",
        "not found": "/datasets/0x" + "ab" * 32,
        "datasets": "/datasets?status=revoked",
        "models": "/models?sort=oldest",
        "batches": "/batches",
        "search": "/search?q=sales",
    }


def test_axe_finds_no_serious_violations(browser: Any, served: Served) -> None:
    # axe is injected as an inline script, which the pages' CSP refuses: bypass it for axe only
    context = browser.new_context(base_url=served.url, bypass_csp=True)
    page = context.new_page()
    found = {}
    for name, path in _pages(served).items():
        page.goto(path)
        if name == "receipt":
            page.wait_for_selector("#browser-report[data-verdict]", timeout=TIMEOUT)
        if name == "lineage":
            page.wait_for_selector("[data-lineage][data-ready=true]")
        if violations := axe_violations(page):
            found[name] = violations
    context.close()
    assert found == {}


def test_pages_fit_a_phone_and_work_from_the_keyboard(browser: Any, served: Served) -> None:
    context = browser.new_context(base_url=served.url, viewport={"width": 375, "height": 740})
    page = context.new_page()
    try:
        for name, path in _pages(served).items():
            page.goto(path)
            overflow = page.evaluate(
                "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{name} is {overflow}px wider than a phone"
        page.goto("/")
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.className") == "skip-link"
        page.keyboard.press("Enter")
        page.keyboard.press("Tab")  # the first thing in main: the hero search box, after links
        assert page.evaluate("() => document.activeElement.closest('main') !== null")
        page.goto(f"/lineage/{served.world.model}")
        page.wait_for_selector("[data-lineage][data-ready=true]")
        page.focus("#lineage-graph")
        before = page.locator("svg .viewport").get_attribute("transform")
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("+")
        assert page.locator("svg .viewport").get_attribute("transform") != before
    finally:
        context.close()


def test_without_javascript_the_verifier_is_the_services(browser: Any, served: Served) -> None:
    context = browser.new_context(base_url=served.url, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(f"/receipts/{served.world.receipt['receipt_id']}")
        assert page.locator("#browser-report").is_hidden()
        page.click("#verifier button[type=submit]")  # posted to /verify: the service answers
        page.wait_for_url("**/verify")
        assert page.locator("#service-report caption .verdict").inner_text().lower() == "valid"
        page.goto(f"/lineage/{served.world.model}")
        assert page.locator("[data-node-table] tbody tr").count() == 5
    finally:
        context.close()


def test_block_hints_say_what_the_cli_says(page: Any, served: Served, tmp_path: Path) -> None:
    """The same bundle, the same claimed blocks: the browser counted only the anchoring's block
    ("1 claimed block(s)") where the CLI counted the bundle's records too ("4")."""
    bundle = served.world.bundle
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    result = runner.invoke(
        cli_app, ["verify", str(path), "--rpc-url", f"{served.url}/rpc", "--json"]
    )
    cli = {c["name"]: c["detail"] for c in json.loads(result.stdout)["checks"]}
    _verify_in_browser(page, bundle, "")
    detail = page.locator("#browser-report tr[data-check=block_hints] td.detail").inner_text()
    assert detail == cli["block_hints"]
    claimed = sum(1 for r in bundle["records"] if r.get("kind") in ("dataset", "model", "batch"))
    assert detail.startswith(f"{claimed} claimed block(s)"), detail

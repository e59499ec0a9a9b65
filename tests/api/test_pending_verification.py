"""Verification while a record is off the canonical chain says pending, in its writer's words.

On anvil with ``--block-time 1``: a dataset, a model trained on it and a prediction's receipt,
then a reorganisation past the model's block with blocks held back, so that the service's
re-sent writes wait in the pool. Meanwhile ``/v1/verify`` (receipt, receipts in bulk and model),
``provenance verify --service``, ``provenance audit`` by the service or against the node with
``--service``, and the browser verifier asked to consult the service all say ``pending``
(the check ``model_registered`` not applicable yet, with what the write waits for), while
``provenance verify`` and the browser straight against the node, asking no service, say what the
chain says: not registered, ``invalid`` (see ``ledger/verification/pending.py`` for why). Once
blocks come again, the same receipt verifies with its model registered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from api.cli import app as cli_app
from ledger.chain.devnode import AnvilNode, anvil_binary
from tests.api.test_crash_recovery import RAW_CSV, _ok, _wait_until, rpc_service_env, serve
from tests.api.test_reorgs import _reorg_back_to
from tests.console._browser import chromium_path, launch

pytestmark = [
    pytest.mark.usefixtures("isolated_cwd"),
    pytest.mark.anvil,
    pytest.mark.skipif(anvil_binary() is None, reason="anvil not installed"),
]
runner = CliRunner(
    env={"PROVENANCE_URL": None, "PROVENANCE_API_KEY": None, "PROVENANCE_DATA_DIR": None}
)


def _model_check(report: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in report["checks"] if c["name"] == "model_registered")


def _cli(path: Path, node: AnvilNode, contract: str, *more: str) -> tuple[int, dict[str, Any]]:
    args = ["verify", str(path), "--rpc-url", node.url, "--contract", contract, "--json", *more]
    result = runner.invoke(cli_app, args)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result.exit_code, json.loads(result.stdout)


def _audit(*args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(cli_app, ["audit", *args, "--json"])
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.stdout, result.stderr
    return result.exit_code, json.loads(result.stdout)


def _in_browser(url: str, receipt: dict[str, Any], contract: str, ask: bool) -> dict[str, Any]:
    """The browser verifier's own report (``#browser-report``), against the service's /rpc."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_context(base_url=url).new_page()
            page.goto("/verify")
            page.fill("#document", json.dumps(receipt, indent=2))
            page.fill("#contract", contract)
            (page.check if ask else page.uncheck)("#ask-service")
            page.click("#verifier button[type=submit]")
            page.wait_for_selector("#verifier[data-state=done]", timeout=60_000)
            section = page.locator("#browser-report")
            row = section.locator("tr[data-check=model_registered]")
            return {
                "verdict": section.get_attribute("data-verdict"),
                "ok": row.get_attribute("data-ok"),
                "detail": row.locator("td.detail").inner_text(),
            }
        finally:
            browser.close()


def test_verification_says_pending_while_the_model_is_off_the_chain(tmp_path: Path) -> None:
    with AnvilNode(tmp_path / "anvil", block_time=1) as node:
        env = {**rpc_service_env(node, tmp_path), "anchor_interval": "3600"}
        with serve(tmp_path / "data", **env) as server, server.client(timeout=120) as client:
            contract = _ok(client.get("/v1/chain"))["contract_address"]
            raw = _ok(client.post("/v1/datasets", files={"file": ("d.csv", RAW_CSV)}), 201)
            steps = {"steps": [{"step": "drop_duplicates"}, {"step": "drop_missing"}]}
            clean = _ok(client.post(f"/v1/datasets/{raw['content_hash']}/derive", json=steps), 201)
            body = {"dataset": clean["content_hash"], "algorithm": "linear_regression"}
            model = _ok(
                client.post("/v1/models", json={**body, "target": "y", "test_size": 0}), 201
            )
            model_hash = model["model_hash"]
            predicted = client.post(
                f"/v1/models/{model_hash}/predict", json={"rows": [{"x1": 1, "x2": 2}]}
            )
            [receipt] = _ok(predicted)["receipts"]
            path = tmp_path / "receipt.json"
            path.write_text(json.dumps(receipt))
            node.rpc("evm_setIntervalMining", 0)  # the re-sent writes wait in the pool
            try:
                _reorg_back_to(node, model["block_number"])
                _wait_until(lambda: _is_pending(client, model_hash), "it reads pending", server)

                # the service's verification: pending, in its words
                report = _ok(client.post("/v1/verify/receipt", json={"receipt": receipt}))
                assert report["verdict"] == "pending", report
                check = _model_check(report)
                assert check["ok"] is None
                assert check["detail"].startswith(f"no model {model_hash} on chain yet: pending")
                assert "this service's write of it is" in check["detail"]
                assert _ok(client.get(f"/v1/verify/models/{model_hash}"))["verdict"] == "pending"

                # the CLI straight against the node: the chain's word; asking the service: pending
                code, alone = _cli(path, node, contract)
                assert (code, alone["verdict"], _model_check(alone)["ok"]) == (1, "invalid", False)
                code, asked = _cli(path, node, contract, "--service", server.url)
                assert (code, asked["verdict"], _model_check(asked)["ok"]) == (3, "pending", None)
                assert f"the service at {server.url} says: " in _model_check(asked)["detail"]

                # in bulk, and the audit: the same rule and exit codes
                admin_key = server.headers["Authorization"].removeprefix("Bearer ")
                bulk = _ok(client.post("/v1/verify/receipts", json={"receipts": [receipt] * 2}))
                assert bulk["summary"] == {"valid": 0, "invalid": 0, "pending": 2}, bulk
                assert _model_check(bulk["reports"][1])["ok"] is None
                path.with_suffix(".jsonl").write_text(f"{json.dumps(receipt)}\n" * 2)
                on_node = [str(path.with_suffix(".jsonl")), "--rpc-url", node.url]
                on_node += ["--contract", contract]
                code, audited = _audit(*on_node)
                assert (code, audited["summary"]["invalid"]) == (1, 2)
                code, audited = _audit(*on_node, "--service", server.url)
                assert (code, audited["summary"]["pending"]) == (3, 2), audited
                assert (
                    f"the service at {server.url} says: "
                    in _model_check(audited["reports"][0])["detail"]
                )
                code, audited = _audit(
                    str(path.with_suffix(".jsonl")), "--url", server.url, "--api-key", admin_key
                )
                assert (code, audited["summary"]["pending"]) == (3, 2), audited

                # the browser verifier, likewise
                if chromium_path() is not None:
                    mine = _in_browser(server.url, receipt, contract, ask=False)
                    assert (mine["verdict"], mine["ok"]) == ("invalid", "false")
                    mine = _in_browser(server.url, receipt, contract, ask=True)
                    assert (mine["verdict"], mine["ok"]) == ("pending", "null"), mine
                    assert "the service says: " in mine["detail"]
            finally:
                node.rpc("evm_setIntervalMining", 1)

            def registered() -> bool:
                report = client.post("/v1/verify/receipt", json={"receipt": receipt}).json()
                return _model_check(report)["ok"] is True

            _wait_until(registered, "the model is back on chain", server)
            code, alone = _cli(path, node, contract)
            assert code == 3 and _model_check(alone)["ok"] is True  # pending: not anchored yet


def _is_pending(client: httpx.Client, record_hash: str) -> bool:
    answer = client.get(f"/v1/records/{record_hash}")
    return answer.status_code == 404 and answer.json()["type"].endswith(":record-pending")

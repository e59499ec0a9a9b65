"""``provenance audit`` against a running server: a batch fetched from the service and verified
by it, the same batch as a file verified straight against the server's node, a tampered file
found out (exit 1, the receipt and its check named), and the usage errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from api.cli import app
from tests.api.conftest import SALES_CSV
from tests.api.test_server_e2e import admin_headers, serve

pytestmark = pytest.mark.usefixtures("isolated_cwd")

runner = CliRunner(
    env={"PROVENANCE_URL": None, "PROVENANCE_API_KEY": None, "PROVENANCE_DATA_DIR": None}
)


def _audit(*args: str | Path, code: int = 0) -> Any:
    result = runner.invoke(app, ["audit", *map(str, args)])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert "Traceback" not in result.stdout + result.stderr
    return result


def _setup(base_url: str, headers: dict[str, str]) -> tuple[str, str, list[dict[str, Any]]]:
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as http:
        data = http.post("/v1/datasets", files={"file": ("d.csv", SALES_CSV)}).json()
        model = http.post(
            "/v1/models",
            json={"dataset": data["content_hash"], "algorithm": "linear_regression",
                  "target": "y", "test_size": 0},
        ).json()["model_hash"]  # fmt: skip
        rows = [{"x1": i, "x2": 2 * i} for i in range(25)]
        http.post(f"/v1/models/{model}/predict", json={"rows": rows}).raise_for_status()
        [batch] = http.post("/v1/anchor").json()["batches"]
        contract = http.get("/v1/chain").json()["contract_address"]
        export = http.get(f"/v1/batches/{batch['batch_id']}/receipts", params={"format": "jsonl"})
        export.raise_for_status()
    return batch["batch_id"], contract, [json.loads(line) for line in export.text.splitlines()]


def test_audit_a_batch_by_the_service_and_against_the_node(tmp_path: Path) -> None:
    data_dir = tmp_path / "served"
    # the node's per-call EVM budget (1 s by default) raised: this test is about audit, and
    # on a loaded machine one eth_call over the batch can take longer than a second
    env = {"PROVENANCE_ANCHOR_INTERVAL": "3600", "PROVENANCE_RPC_EVM_TIMEOUT": "20"}
    with serve(data_dir, env=env) as base_url:
        headers = admin_headers(data_dir)
        key = ("--api-key", headers["Authorization"].split()[1]) if headers else ()
        batch_id, contract, receipts = _setup(base_url, headers)
        node = ("--rpc-url", f"{base_url}/rpc", "--contract", contract)

        by_service = json.loads(
            _audit("--batch", batch_id, "--url", base_url, *key, "--json").stdout
        )
        assert by_service["summary"] == {"valid": 25, "invalid": 0, "pending": 0}
        shown = _audit("--batch", batch_id, "--url", base_url, *key).stdout
        assert "25 receipt(s) audited" in shown and "invalid receipts" not in shown

        lines = tmp_path / "batch.jsonl"
        lines.write_text("".join(json.dumps(r) + "\n" for r in receipts))
        on_node = json.loads(_audit(lines, *node, "--chunk", "7", "--json").stdout)
        assert on_node["summary"] == by_service["summary"]
        assert [r["subject"] for r in on_node["reports"]] == [r["receipt_id"] for r in receipts]

        tampered = [*receipts]
        tampered[3] = {**receipts[3], "output": 12345.0}
        listed = tmp_path / "tampered.json"
        listed.write_text(json.dumps(tampered))
        for source in (node, ("--url", base_url, *key)):
            found = _audit(listed, *source, code=1)
            assert receipts[3]["receipt_id"] in found.stdout
            assert "output_hash" in found.stdout
            report = json.loads(_audit(listed, *source, "--json", code=1).stdout)
            assert report["summary"] == {"valid": 24, "invalid": 1, "pending": 0}
            assert report["reports"][3]["verdict"] == "invalid"

        unreachable = _audit(lines, "--rpc-url", "http://127.0.0.1:9", "--contract", contract,
                             code=2)  # fmt: skip
        assert "unreachable" in unreachable.stderr


def test_audit_usage_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    for args, message in (
        ((), "give a receipts file or --batch ID"),
        (("--batch", "0x" + "11" * 32), "--batch needs --url"),
        ((empty, "--rpc-url", "http://127.0.0.1:9"), "--rpc-url needs --contract"),
        ((empty,), "give --url"),
        ((empty, "--url", "http://127.0.0.1:9"), "no receipts to audit"),
        ((empty, "--url", "http://127.0.0.1:9", "--service", "http://x"), "--service goes with"),
    ):
        assert message in _audit(*args, code=1).stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"nope": 1}')
    assert "expected a list of receipts" in _audit(bad, "--url", "http://x", code=4).stderr

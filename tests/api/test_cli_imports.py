"""The CLI starts fast: ``provenance --help`` imports no ledger, web3 or HTTP client, and
``provenance verify`` and ``provenance audit`` against a node import neither scikit-learn nor
skops, FastAPI, starlette, httpx nor web3 (``import web3`` alone costs about 0.6 s: verification
reads the node through ``ledger.reading.chain_reader`` instead).

Each check runs the real command in a fresh interpreter and reads ``sys.modules`` afterwards
(never the clock: tests do not assert on wall time; the README's figures come from timing runs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ledger.formats.receipt_signing import ReceiptSigner
from ledger.formats.receipts import ReceiptDomain, input_hash

REPO = Path(__file__).resolve().parents[2]
# never needed by the command under test; each costs from 0.1 s (httpx) to 1 s (scikit-learn)
NOT_FOR_VERIFY = (
    "sklearn", "skops", "scipy", "numpy", "fastapi", "starlette", "httpx", "uvicorn",
    "web3", "eth_account", "aiohttp",
)  # fmt: skip
NOT_FOR_HELP = (*NOT_FOR_VERIFY, "ledger", "ml", "web3", "eth_account", "rich.progress")

_PROBE = """
import json, sys
from api.cli import app
try:
    app(json.loads(sys.argv[1]), prog_name="provenance")
except SystemExit as exc:
    code = exc.code
with open(sys.argv[2], "w") as report:
    json.dump({"exit": code, "modules": sorted(sys.modules)}, report)
"""


def run_in_fresh_interpreter(args: list[str], report: Path) -> dict[str, Any]:
    """``provenance ARGS`` in a new Python; its exit status and every module it imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
    subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args), str(report)],
        cwd=REPO,  # this checkout's sources, whatever an editable install points at
        env=env,
        stdout=subprocess.DEVNULL,
        check=False,
        timeout=120,
    )
    return json.loads(report.read_text())


def imported(result: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` (packages or modules) the run imported."""
    modules = set(result["modules"])
    return [n for n in names if n in modules or any(m.startswith(n + ".") for m in modules)]


def test_help_imports_no_command_dependency(tmp_path: Path) -> None:
    result = run_in_fresh_interpreter(["--help"], tmp_path / "report.json")
    assert result["exit"] == 0
    assert "typer" in result["modules"]  # the probe did run the CLI
    assert imported(result, NOT_FOR_HELP) == []


def test_verify_against_an_unreachable_node_imports_only_the_ledger(tmp_path: Path) -> None:
    domain = ReceiptDomain(31337, "0x" + "11" * 20)
    receipt = ReceiptSigner("0x" + "01" * 32, domain).sign(
        model_hash="0x" + "22" * 32, input_hash=input_hash({"x": 1}), output=2.0
    )
    bundle = tmp_path / "bundle.json"
    bundle.write_text(
        json.dumps(
            {
                "receipt": json.loads(receipt.to_json()),
                "input": {"x": 1},
                "ledger": {"contract": domain.verifying_contract},
            }
        )
    )
    args = ["verify", str(bundle), "--rpc-url", "http://127.0.0.1:9"]
    result = run_in_fresh_interpreter(args, tmp_path / "report.json")
    assert result["exit"] == 2  # the node was asked: the whole verification path is imported
    assert (
        "ledger.verify" in result["modules"] and "ledger.reading.chain_reader" in result["modules"]
    )
    assert imported(result, NOT_FOR_VERIFY) == []


def test_audit_against_an_unreachable_node_imports_only_the_ledger(tmp_path: Path) -> None:
    domain = ReceiptDomain(31337, "0x" + "11" * 20)
    signer = ReceiptSigner("0x" + "01" * 32, domain)
    receipts = tmp_path / "receipts.jsonl"
    receipts.write_text(
        "".join(
            signer.sign(model_hash="0x" + "22" * 32, input_hash=input_hash({"x": i}), output=i)
            .to_json() + "\n"
            for i in range(3)
        )
    )  # fmt: skip
    args = ["audit", str(receipts), "--rpc-url", "http://127.0.0.1:9"]
    result = run_in_fresh_interpreter(
        [*args, "--contract", domain.verifying_contract], tmp_path / "report.json"
    )
    assert result["exit"] == 2  # the node was asked
    assert (
        "ledger.verify" in result["modules"] and "ledger.reading.chain_reader" in result["modules"]
    )
    assert imported(result, NOT_FOR_VERIFY) == []

"""The benchmarks never rot: ``python -m bench --smoke`` (every benchmark's code, at small
sizes) runs to the end in the test suite.

This asserts that every benchmark ran and wrote its figures, never what the figures are.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.chain._paths import REPO_ROOT

EAS = REPO_ROOT / "bench" / "node_modules" / "@ethereum-attestation-service" / "eas-contracts"


@pytest.mark.slow
@pytest.mark.skipif(not EAS.is_dir(), reason="EAS artifacts missing: npm ci --prefix bench")
def test_quick_benchmarks_run_to_the_end(tmp_path: Path) -> None:
    results = REPO_ROOT / "bench" / "results" / "summary.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--tmp", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(results.read_text())
    assert summary["failed"] == []
    assert {row["benchmark"] for row in summary["headline"]} >= {
        "gas", "registration", "receipts", "verification", "hashing", "scale"
    }  # fmt: skip

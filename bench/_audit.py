"""What the verification benchmark needs besides its timing loops: a whole batch of receipts
from a service, the bulk endpoint driven a chunk at a time, the CLI timed as a process, and
the baseline of pure signature recovery.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._common import REPO_ROOT
from ledger.formats.receipts import Receipt, ReceiptDomain, receipt_digest

__all__ = [
    "MAX_PREDICT_ROWS",
    "cli_seconds",
    "http_bulk_seconds",
    "provenance",
    "recovery_rate",
    "service_batch",
]

MAX_PREDICT_ROWS = 1_000  # the service's default max_predict_rows
BULK_CHUNK = 10_000  # receipts per POST /v1/verify/receipts/file (the default limit)


def service_batch(http: Any, model: str, count: int) -> tuple[str, list[dict[str, Any]]]:
    """Predict ``count`` rows, anchor them now, and return the batch id and its receipts as
    ``GET /v1/batches/{id}/receipts`` exports them. One batch if the service's
    ``anchor_batch_size`` is at least ``count``."""
    for start in range(0, count, MAX_PREDICT_ROWS):
        rows = [{"x1": (start + i) % 97, "x2": (start + i) % 13}
                for i in range(min(MAX_PREDICT_ROWS, count - start))]  # fmt: skip
        http.post(f"/v1/models/{model}/predict", json={"rows": rows}).raise_for_status()
    batches = http.post("/v1/anchor").json()["batches"]
    if not batches or any(b["state"] != "anchored" for b in batches):
        raise RuntimeError(f"the receipts were not anchored: {batches}")
    batch_id = max(batches, key=lambda b: b["count"])["batch_id"]
    export = http.get(f"/v1/batches/{batch_id}/receipts", params={"format": "jsonl"})
    export.raise_for_status()
    return batch_id, [json.loads(line) for line in export.text.splitlines()]


def http_bulk_seconds(http: Any, documents: Sequence[dict[str, Any]]) -> float:
    """Seconds to verify ``documents`` through ``POST /v1/verify/receipts/file``, a chunk of
    :data:`BULK_CHUNK` per request; raises unless every report is valid."""
    chunks = [
        "".join(json.dumps(d, separators=(",", ":")) + "\n" for d in documents[i : i + BULK_CHUNK])
        .encode()
        for i in range(0, len(documents), BULK_CHUNK)
    ]  # fmt: skip
    start = time.perf_counter()
    for chunk in chunks:
        response = http.post(
            "/v1/verify/receipts/file", files={"file": ("r.jsonl", chunk, "application/x-ndjson")}
        )
        response.raise_for_status()
        summary = response.json()["summary"]
        if summary["invalid"] or summary["pending"]:
            raise RuntimeError(f"bulk verification found problems: {summary}")
    return time.perf_counter() - start


def cli_seconds(args: Sequence[str], runs: int, *, expect: int = 0) -> list[float]:
    """Wall seconds of ``args`` as a fresh process, ``runs`` times (interpreter start
    included: what a person waits for); raises if it exits other than ``expect``."""
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
        )
        seconds.append(time.perf_counter() - start)
        if done.returncode != expect:
            raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    return seconds


def provenance(*args: str | Path) -> list[str]:
    """The ``provenance`` command's arguments for :func:`cli_seconds`."""
    return ["-m", "api", *map(str, args)]


def recovery_rate(receipts: Sequence[Receipt], domain: ReceiptDomain) -> float:
    """Signatures recovered per second by coincurve alone (digests computed beforehand): the
    least a verification of these receipts can cost."""
    from coincurve import PublicKey

    pairs = [
        (r.signature[:64] + bytes([r.signature[64] - 27]), receipt_digest(r, domain))
        for r in receipts
    ]
    start = time.perf_counter()
    for signature, digest in pairs:
        PublicKey.from_signature_and_message(signature, digest, hasher=None)
    return len(pairs) / (time.perf_counter() - start)

"""Predictions at serving speed (issue 26): the service beside a plain model server, one run.

A real ``provenance serve`` (embedded chain on disk, default anchoring) and, started by this
benchmark, a plain FastAPI endpoint serving the same scikit-learn model with no receipts
(:mod:`bench._plain_server`, the service's own model file) answer the same requests: a ridge
regression trained by the service on scikit-learn's diabetes data (442 rows, 10 features),
rows taken from that data in turn. Runs alternate between the two servers (service, plain,
service, plain...) so that both meet the same machine:

* rows/s of 100-row requests from 4 clients (threads, one keep-alive ``httpx.Client`` each);
  target: the service at least 0.4x the plain endpoint;
* p99 latency of 1-row requests from 4 clients; target: at most 2x the plain endpoint's;
* the service's CPU time per receipt (``/proc`` user + system over the 100-row runs, anchoring
  included: after each run of the service, and before its CPU time is read, ``POST /v1/anchor``
  anchors what is still pending, so that no run's anchoring is left to spill into the next
  run, the plain endpoint's, or out of the count); target about 25 us.

The service runs with its rate limits off (the plain endpoint has none).

Every answer is checked (200, one prediction per row, and one receipt per row from the
service); after the runs every receipt is anchored (``POST /v1/anchor``) and counted.
Run: ``python -m bench --only serving`` (``--quick`` for a short run).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench._common import (
    Config,
    cpu_seconds,
    fmt,
    paired_ratio,
    print_table,
    scratch_dir,
    summarize,
    write_results,
)
from bench._server import service
from bench.bench_receipts import CLIENTS, load
from ledger.chain.devnode import free_port
from ledger.storage.artifacts import ArtifactStore

__all__ = ["run"]

# The plain endpoint has no rate limits; the service's per-key limit (500/s) would cap the
# 1-row runs, so it is turned off here (it costs the same CPU either way).
_NO_RATE_LIMITS = {"PROVENANCE_RATE_LIMIT_KEYED": "0", "PROVENANCE_RATE_LIMIT_ANONYMOUS": "0"}


def diabetes() -> tuple[bytes, list[dict[str, float]]]:
    """scikit-learn's diabetes data as a CSV (features and ``target``) and as input rows."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    names = [str(n) for n in data.feature_names]
    lines = [",".join([*names, "target"])]
    rows = []
    for x, y in zip(data.data, data.target, strict=True):
        values = [float(v) for v in x]
        lines.append(",".join([*(repr(v) for v in values), repr(float(y))]))
        rows.append(dict(zip(names, values, strict=True)))
    return ("\n".join(lines) + "\n").encode(), rows


@dataclass
class _Plain:
    url: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self, timeout: float = 120.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)


@contextmanager
def plain_server(model_file: Path, model_hash: str, log: Path) -> Iterator[_Plain]:
    """The baseline endpoint in a child process on a free loopback port, stopped on exit."""
    port = free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench._plain_server", str(model_file), model_hash, str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the plain server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the plain server did not start")
            time.sleep(0.1)
        yield _Plain(url, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _setup(http: httpx.Client, csv: bytes) -> str:
    response = http.post("/v1/datasets", files={"file": ("diabetes.csv", csv)})
    response.raise_for_status()
    response = http.post(
        "/v1/models",
        json={
            "dataset": response.json()["content_hash"],
            "algorithm": "ridge",
            "target": "target",
        },
    )
    response.raise_for_status()
    return response.json()["model_hash"]


def _counted(key: str, size: int) -> Any:
    def check(response: httpx.Response) -> int:
        body = response.json()
        if len(body["predictions"]) != size or (key and len(body[key]) != size):
            raise AssertionError(f"expected {size} predictions (and receipts), got {body}")
        return size

    return check


def run(config: Config) -> list[dict[str, Any]]:
    per_client = {100: config.pick(3, 25), 1: config.pick(20, 250)}
    warm_up = config.pick(1, 3)
    csv, rows = diabetes()

    def body(size: int) -> Any:
        return lambda i: {"rows": [rows[(i * size + k) % len(rows)] for k in range(size)]}

    figures: dict[str, list[dict[str, Any]]] = {
        f"{who}_{size}": [] for who in ("service", "plain") for size in per_client
    }
    with (
        scratch_dir(config, "serving-") as work,
        service(config, work / "service", env=_NO_RATE_LIMITS) as server,
        server.client() as http,
    ):
        model = _setup(http, csv)
        model_file = ArtifactStore(server.data_dir / "artifacts").path_of(model)
        with plain_server(model_file, model, work / "plain.log") as plain:
            paths = {"service": f"/v1/models/{model}/predict", "plain": "/predict"}
            servers = {"service": server, "plain": plain}
            keys = {"service": "receipts", "plain": ""}
            for who in servers:  # warm-up
                for size in per_client:
                    load(
                        servers[who],
                        paths[who],
                        body(size),
                        warm_up,
                        check=_counted(keys[who], size),
                    )
            for _ in range(config.runs):
                for size, n in per_client.items():
                    for who in ("service", "plain"):
                        before = cpu_seconds(servers[who].pid)
                        result = load(
                            servers[who], paths[who], body(size), n,
                            check=_counted(keys[who], size),
                        )  # fmt: skip
                        if who == "service":  # its receipts' anchoring is part of the cost
                            http.post("/v1/anchor").raise_for_status()
                        cpu = cpu_seconds(servers[who].pid) - before
                        result["cpu_us_per_row"] = cpu / result["items"] * 1e6
                        figures[f"{who}_{size}"].append(result)
        counts = http.post("/v1/anchor").json()["receipts"]
    return _report(config, per_client, figures, counts)


def _report(
    config: Config,
    per_client: dict[int, int],
    figures: dict[str, list[dict[str, Any]]],
    counts: dict[str, int],
) -> list[dict[str, Any]]:
    def median(key: str, field: str) -> dict[str, Any]:
        return summarize([r[field] for r in figures[key]])

    rate_ratio = paired_ratio(
        [r["rate"] for r in figures["service_100"]], [r["rate"] for r in figures["plain_100"]]
    )
    p99_ratio = paired_ratio(
        [r["p99_ms"] for r in figures["service_1"]], [r["p99_ms"] for r in figures["plain_1"]]
    )
    cpu = median("service_100", "cpu_us_per_row")
    rows = []
    for key in ("service_100", "plain_100", "service_1", "plain_1"):
        who, size = key.split("_")
        cells = [median(key, f) for f in ("rate", "p50_ms", "p99_ms", "cpu_us_per_row")]
        rows.append(
            [who, size, *(f"{fmt(c['median'])} ({fmt(c['min'])}-{fmt(c['max'])})" for c in cells)]
        )
    tables = [
        print_table(
            f"Predictions, {CLIENTS} clients, ridge on diabetes, the service (one receipt per row) "
            f"beside a plain FastAPI endpoint (no receipts), alternating runs, median of "
            f"{config.runs} (min-max)",
            ["server", "rows/request", "rows/s", "p50 ms", "p99 ms", "server CPU us/row"],
            rows,
        )
    ]
    print(
        f"100-row rows/s, service / plain: {fmt(rate_ratio['median'])}x (target >= 0.4x); "
        f"1-row p99, service / plain: {fmt(p99_ratio['median'])}x (target <= 2x); "
        f"service CPU per receipt {fmt(cpu['median'])} us (target ~25 us); "
        f"receipts after POST /v1/anchor: {counts}\n"
    )
    write_results(
        "serving",
        {
            "requests_per_client": per_client,
            "runs": figures,
            "rate_ratio_100": rate_ratio,
            "p99_ratio_1": p99_ratio,
            "service_cpu_us_per_receipt": cpu,
            "receipt_counts_after_flush": counts,
        },
        tables,
    )
    return [
        {
            "benchmark": "serving",
            "figure": f"rows/s of 100-row requests, {CLIENTS} clients, vs plain FastAPI",
            "measured": fmt(median("service_100", "rate")["median"]),
            "baseline": f"plain endpoint {fmt(median('plain_100', 'rate')['median'])}/s",
            "ratio": fmt(rate_ratio["median"]),
            "target": ">= 0.4x",
            "met": rate_ratio["median"] >= 0.4,
        },
        {
            "benchmark": "serving",
            "figure": f"p99 of 1-row requests, {CLIENTS} clients, vs plain FastAPI",
            "measured": f"{fmt(median('service_1', 'p99_ms')['median'])} ms",
            "baseline": f"plain endpoint {fmt(median('plain_1', 'p99_ms')['median'])} ms",
            "ratio": fmt(p99_ratio["median"]),
            "target": "<= 2x",
            "met": p99_ratio["median"] <= 2,
        },
        {
            "benchmark": "serving",
            "figure": "service CPU per receipt (100-row requests)",
            "measured": f"{fmt(cpu['median'])} us",
            "baseline": "(was ~250 us)",
            "ratio": "",
            "target": "~25 us",
            "met": cpu["median"] <= 30,
        },
    ]

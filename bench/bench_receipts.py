"""Prediction receipts end to end: receipts per second and latency through the HTTP API.

A real ``provenance serve`` process on loopback (embedded chain on disk, default anchoring:
``anchor_batch_size`` 1024 or ``anchor_interval`` 5 s) serves ``POST /v1/models/{hash}/predict``
to several concurrent clients (threads, one keep-alive ``httpx.Client`` each), with requests of
1 and of 100 rows. Every prediction gets an EIP-712 signed receipt written durably before the
answer; batches are anchored by the service's anchorer while the load runs. After the runs
every receipt is flushed (``POST /v1/anchor``) and the anchored count is checked.

Baselines, measured in the same run and interleaved with the load runs, both on a persistent
embedded chain (as the service's) and both one on-chain transaction per prediction:

* **anchorPredictions per prediction**: sign one receipt and anchor it alone with the
  ledger client (what the service would do without batching);
* **minimal registry write per prediction**: the cheapest possible transaction (one slot, one
  event; raw, explicit gas). The headline ratio is against this, the faster one.

Latency percentiles are over every request of a run; figures are medians over runs (min-max).
The load generator shares the machine's 2 cores with the server; the service's own CPU time per
receipt (``/proc``'s user + system time over the run) is shown too, a figure that other load on
the machine does not inflate the way it inflates wall time.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from bench import _registry
from bench._common import (
    Config,
    RawSender,
    cpu_seconds,
    fmt,
    open_chain,
    paired_ratio,
    percentile,
    print_table,
    scratch_dir,
    summarize,
    write_results,
)
from bench._server import Server, service
from ledger.chain.client import LedgerClient
from ledger.formats.merkle import StandardMerkleTree
from ledger.formats.receipt_signing import ReceiptSigner
from ledger.formats.receipts import RECEIPT_LEAF_ENCODING, ReceiptDomain, receipt_leaf

__all__ = ["CLIENTS", "run", "setup_model"]

CLIENTS = 4
TRAINING_ROWS = 200


def training_csv(rows: int = TRAINING_ROWS) -> bytes:
    """A small regression dataset: y = 3*x1 + 2*x2 + 1 (+ a little noise)."""
    lines = ["x1,x2,y"]
    for i in range(rows):
        x1, x2 = i % 97, (i * 7) % 13
        lines.append(f"{x1},{x2},{3 * x1 + 2 * x2 + 1 + (i % 5) * 0.1:.1f}")
    return ("\n".join(lines) + "\n").encode()


def setup_model(http: httpx.Client) -> str:
    """Register a training dataset and train a linear regression on it; return the model hash."""
    response = http.post("/v1/datasets", files={"file": ("train.csv", training_csv())})
    response.raise_for_status()
    dataset = response.json()["content_hash"]
    response = http.post(
        "/v1/models",
        json={"dataset": dataset, "algorithm": "linear_regression", "target": "y"},
    )
    response.raise_for_status()
    return response.json()["model_hash"]


def rows_body(n: int, offset: int = 0) -> dict[str, Any]:
    return {"rows": [{"x1": (offset + i) % 97, "x2": (offset + i) % 13} for i in range(n)]}


def load(
    server: Server, path: str, body: Callable[[int], Any], requests_per_client: int,
    clients: int = CLIENTS, check: Callable[[httpx.Response], int] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """``clients`` threads each POST ``requests_per_client`` times; returns wall time, items
    counted by ``check`` (default 1 per request) and every request's latency in seconds."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    items = [0] * clients
    errors: list[str] = []
    barrier = threading.Barrier(clients + 1)

    def worker(k: int) -> None:
        with server.client() as http:
            http.get("/healthz")  # open the connection before the clock starts
            barrier.wait()
            for i in range(requests_per_client):
                start = time.perf_counter()
                response = http.post(path, json=body(k * requests_per_client + i))
                latencies[k].append(time.perf_counter() - start)
                if response.status_code != 200:
                    errors.append(f"{response.status_code}: {response.text[:200]}")
                    return
                items[k] += check(response) if check else 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join(timeout=600)
    wall = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} request(s) failed, first: {errors[0]}")
    flat = [x for per in latencies for x in per]
    return {
        "wall_s": wall,
        "items": sum(items),
        "requests": len(flat),
        "rate": sum(items) / wall,
        "requests_per_s": len(flat) / wall,
        "p50_ms": percentile(flat, 50) * 1000,
        "p95_ms": percentile(flat, 95) * 1000,
        "p99_ms": percentile(flat, 99) * 1000,
    }


class _PerPredictionTx:
    """The baselines: one transaction per prediction on a persistent embedded chain."""

    def __init__(self, chain: Any) -> None:
        account = chain.account()
        self.client, _ = LedgerClient.deploy(chain.backend, account)
        parent = os.urandom(32)
        self.client.register_dataset(
            parent, rows_root=os.urandom(32), row_count=1, schema_hash=os.urandom(32)
        )
        self.model = os.urandom(32)
        self.client.register_model(self.model, datasets=[parent], metadata_hash=os.urandom(32))
        domain = ReceiptDomain(self.client.chain_id(), self.client.address)
        self.signer = ReceiptSigner(account.key, domain)
        self.sender = RawSender(chain.backend, chain.account())
        self.registry = self.sender.deploy(_registry.BYTECODE)

    def anchor_one(self) -> None:
        receipt = self.signer.sign(model_hash=self.model, input_hash=os.urandom(32), output=1.0)
        tree = StandardMerkleTree.of([receipt_leaf(receipt)], list(RECEIPT_LEAF_ENCODING))
        self.client.anchor_predictions(self.model, tree.root, 1)

    def registry_write(self) -> None:
        self.sender.send(
            self.registry, _registry.register_data(os.urandom(32)), _registry.GAS_LIMIT
        )


def _rate(op: Callable[[], Any], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        op()
    return n / (time.perf_counter() - start)


def run(config: Config) -> list[dict[str, Any]]:
    sizes = {1: config.pick(20, 60), 100: config.pick(4, 12)}  # requests per client per run
    baseline_n = config.pick(15, 40)
    results: dict[int, list[dict[str, Any]]] = {size: [] for size in sizes}
    baselines: dict[str, list[float]] = {"anchor_one": [], "registry_write": []}
    with scratch_dir(config, "receipts-") as work:  # noqa: SIM117 - work names the others
        with (
            service(config, work / "service") as server,
            server.client() as http,
            open_chain("embedded-disk", work / "baseline") as chain,
        ):
            model = setup_model(http)
            path = f"/v1/models/{model}/predict"
            base = _PerPredictionTx(chain)
            base.anchor_one(), base.registry_write()  # warm-up
            for size in sizes:  # warm-up of each request size
                load(server, path, lambda i, s=size: rows_body(s, i), 2, clients=1)
            for _ in range(config.runs):
                for size, per_client in sizes.items():
                    cpu_before = cpu_seconds(server.pid)
                    figures = load(server, path, lambda i, s=size: rows_body(s, i), per_client,
                                   check=lambda r: len(r.json()["receipts"]))  # fmt: skip
                    cpu = cpu_seconds(server.pid) - cpu_before
                    figures["server_cpu_us_per_receipt"] = cpu / figures["items"] * 1e6
                    results[size].append(figures)
                baselines["anchor_one"].append(_rate(base.anchor_one, baseline_n))
                baselines["registry_write"].append(_rate(base.registry_write, baseline_n))
            flush_started = time.perf_counter()
            flushed = http.post("/v1/anchor").json()
            flush_s = time.perf_counter() - flush_started
            counts = flushed["receipts"]
            service_rss = server.rss()
            startup_s = server.started_in
    return _report(config, sizes, results, baselines, counts, flush_s, service_rss, startup_s)


def _report(
    config: Config,
    sizes: dict[int, int],
    results: dict[int, list[dict[str, Any]]],
    baselines: dict[str, list[float]],
    counts: dict[str, int],
    flush_s: float,
    service_rss: dict[str, float],
    startup_s: float,
) -> list[dict[str, Any]]:
    base_anchor, base_write = (
        summarize(baselines["anchor_one"]),
        summarize(baselines["registry_write"]),
    )
    rows, figures, headline = [], {}, []
    for size in sizes:
        runs = results[size]
        rate = summarize([r["rate"] for r in runs])
        lat = {q: summarize([r[f"{q}_ms"] for r in runs]) for q in ("p50", "p95", "p99")}
        vs_write = paired_ratio([r["rate"] for r in runs], baselines["registry_write"])
        vs_anchor = paired_ratio([r["rate"] for r in runs], baselines["anchor_one"])
        cpu = summarize([r["server_cpu_us_per_receipt"] for r in runs])
        figures[f"rows_{size}"] = {
            "requests_per_client_per_run": sizes[size],
            "clients": CLIENTS,
            "receipts_per_s": rate,
            "requests_per_s": summarize([r["requests_per_s"] for r in runs]),
            "latency_ms": lat,
            "ratio_vs_registry_write_per_prediction": vs_write,
            "ratio_vs_anchor_per_prediction": vs_anchor,
            "server_cpu_us_per_receipt": cpu,
            "runs": runs,
        }
        rows.append(
            [
                f"{size} row{'s' if size > 1 else ''}",
                f"{fmt(rate['median'])} ({fmt(rate['min'])}-{fmt(rate['max'])})",
                *(
                    f"{fmt(lat[q]['median'])} ({fmt(lat[q]['min'])}-{fmt(lat[q]['max'])})"
                    for q in ("p50", "p95", "p99")
                ),
                f"{fmt(vs_anchor['median'])} ({fmt(vs_anchor['min'])}-{fmt(vs_anchor['max'])})",
                f"{fmt(vs_write['median'])} ({fmt(vs_write['min'])}-{fmt(vs_write['max'])})",
                f"{fmt(cpu['median'])} ({fmt(cpu['min'])}-{fmt(cpu['max'])})",
            ]
        )
    tables = [
        print_table(
            f"Receipts through the HTTP API, {CLIENTS} concurrent clients, anchoring on "
            f"(batch 1024 or 5 s), median of {config.runs} runs (min-max)",
            [
                "request",
                "receipts/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "x anchor-per-prediction",
                "x registry-write-per-prediction",
                "service CPU us/receipt",
            ],
            rows,
        ),
        print_table(
            "Baselines: one on-chain transaction per prediction (embedded chain on disk), same run",
            ["baseline", "predictions/s"],
            [
                ["sign + anchorPredictions (1 leaf) per prediction", _cell(base_anchor)],
                ["minimal registry raw write per prediction", _cell(base_write)],
            ],
        ),
    ]
    print(
        f"after the runs: POST /v1/anchor took {flush_s * 1000:.0f} ms; receipts {counts}; "
        f"service RSS {service_rss['rss_mb']:.0f} MB (peak {service_rss['peak_rss_mb']:.0f} MB); "
        f"service start-up {startup_s:.1f} s\n"
    )
    write_results(
        "receipts",
        {
            "figures": figures,
            "baselines": {"anchor_one": base_anchor, "registry_write": base_write},
            "receipt_counts_after_flush": counts,
            "flush_seconds": flush_s,
            "service_memory": service_rss,
            "service_startup_seconds": startup_s,
        },
        tables,
    )
    hundred = figures["rows_100"]
    headline.append(
        {
            "benchmark": "receipts",
            "figure": f"receipts/s, 100-row requests, {CLIENTS} clients",
            "measured": fmt(hundred["receipts_per_s"]["median"]),
            "baseline": f"1 tx per prediction {fmt(base_write['median'])}/s",
            "ratio": fmt(hundred["ratio_vs_registry_write_per_prediction"]["median"]),
            "target": ">= 5,000/s and >= 50x",
            "met": hundred["receipts_per_s"]["median"] >= 5000
            and hundred["ratio_vs_registry_write_per_prediction"]["median"] >= 50,
        }
    )
    one = figures["rows_1"]
    headline.append(
        {
            "benchmark": "receipts",
            "figure": f"1-row requests: receipts/s, p50/p95/p99 ms ({CLIENTS} clients)",
            "measured": f"{fmt(one['receipts_per_s']['median'])}/s; "
            + "/".join(fmt(one["latency_ms"][q]["median"]) for q in ("p50", "p95", "p99")),
            "baseline": f"1 tx per prediction {fmt(base_write['median'])}/s",
            "ratio": fmt(one["ratio_vs_registry_write_per_prediction"]["median"]),
            "target": "(none)",
            "met": None,
        }
    )
    lost = counts.get("pending", 0) + counts.get("failed", 0)
    if lost:
        print(f"WARNING: {lost} receipt(s) not anchored after the flush: {counts}\n")
    return headline


def _cell(s: dict[str, Any]) -> str:
    return f"{fmt(s['median'])} ({fmt(s['min'])}-{fmt(s['max'])})"

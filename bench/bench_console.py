"""The auditor's console: server time of a record page, of a 1,000-node lineage page, and of a
list page over 10,000 datasets.

A real ``provenance serve`` process on loopback (embedded chain on disk) holds the demo flow
(sales data, cleaned, a linear model, an anchored batch of predictions) and ``DERIVED`` more
datasets derived from the raw data, registered straight through the ledger client in batch
writes, so that the raw dataset's downstream lineage has ``1 + 2 * DERIVED`` nodes (each derived
dataset and the transform that made it), and ``RAW`` raw datasets more, each with a metadata
document of its own in the artifact store (a name, ``bench-N.csv``), so that ``/datasets`` lists
more than 10,000.

Figures, each over ``runs`` rounds of ``REQUESTS`` requests (median of the rounds' medians):

* **server time**: the ``Server-Timing`` the page reports (its handler, from routing to
  rendered HTML), and the wall time of the HTTP request as a client sees it;
* **baseline**, measured in the same rounds, interleaved: the JSON API call for the same record
  (``GET /v1/models/{hash}``, ``GET /v1/lineage/{hash}?direction=down``), wall time. The ratio
  says what the page costs over the data it shows.

The list pages are measured warm: the first list request reads every dataset's metadata
document once (names never change) and that one-off cost is printed on its own line.

Targets (issue 16): a record page ≤ 50 ms, a 1,000-node lineage page ≤ 300 ms of server time;
(issue 24) a list page over 10,000 datasets ≤ 50 ms.
"""

from __future__ import annotations

import os
import re
import statistics
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from bench._common import Config, fmt, print_table, scratch_dir, summarize, write_results
from bench._server import api_server
from ledger.records import DatasetInput
from ml.hashing import canonical_json

__all__ = ["run"]

DERIVED = 500  # → a 1,001-node lineage
RAW = 9_600  # → 10,102 datasets in all
SMOKE_DERIVED, SMOKE_RAW = 20, 100  # --smoke: the same pages over a small ledger
BATCH = 100  # datasets per registerDatasets transaction
SALES_CSV = "x1,x2,y\n100,200,5000\n200,300,6000\n300,400,7000\n300,400,7000\n250,,6500\n"
_TIMING = re.compile(r"app;dur=([0-9.]+)")


def _ok(response: Any) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


def _prepare(data_dir: Path, derived_count: int, raw_count: int) -> dict[str, str]:
    """The demo flow through the API in process, then ``derived_count`` derived datasets of the
    raw data and ``raw_count`` raw ones in batch writes; returns the hashes the pages are about."""
    settings = Settings(data_dir=data_dir, anchor_interval=3600)
    with TestClient(create_app(settings)) as api:
        api.headers["Authorization"] = f"Bearer {(data_dir / 'admin.key').read_text().strip()}"
        raw = _ok(api.post("/v1/datasets", files={"file": ("sales.csv", SALES_CSV)}))
        steps = [{"step": "drop_duplicates"}, {"step": "drop_missing"}]
        clean = _ok(api.post(f"/v1/datasets/{raw['content_hash']}/derive", json={"steps": steps}))
        request = {"dataset": clean["content_hash"], "algorithm": "linear_regression",
                   "target": "y", "test_size": 0}  # fmt: skip
        model = _ok(api.post("/v1/models", json=request))["model_hash"]
        _ok(api.post(f"/v1/models/{model}/predict", json={"rows": [{"x1": 150, "x2": 250}]}))
        _ok(api.post("/v1/anchor"))
        client = api.app.state.service.core.client  # type: ignore[attr-defined]
        derived = [
            DatasetInput(
                content_hash=os.urandom(32).hex(),
                rows_root=os.urandom(32).hex(),
                row_count=10,
                schema_hash=os.urandom(32).hex(),
                parents=(raw["content_hash"],),
                transform_hash=os.urandom(32).hex(),
            )
            for _ in range(derived_count)
        ]
        store = api.app.state.service.core.store  # type: ignore[attr-defined]
        plain = [
            DatasetInput(
                content_hash=os.urandom(32).hex(),
                rows_root=os.urandom(32).hex(),
                row_count=10,
                schema_hash=os.urandom(32).hex(),
                metadata_hash=store.put_bytes(
                    canonical_json({"name": f"bench-{n}.csv", "columns": [], "size": 100})
                ),
            )
            for n in range(raw_count)
        ]
        for many in (derived, plain):
            for start in range(0, len(many), BATCH):
                client.register_datasets(many[start : start + BATCH])
    return {"raw": raw["content_hash"], "model": model}


def _timed(client: Any, path: str, html: bool) -> tuple[float, float | None]:
    """(wall ms, Server-Timing ms or None) of one GET."""
    headers = {"Accept": "text/html" if html else "application/json"}
    start = time.perf_counter()
    response = client.get(path, headers=headers)
    wall = (time.perf_counter() - start) * 1000
    assert response.status_code == 200, f"{path}: {response.status_code}"
    match = _TIMING.search(response.headers.get("server-timing", ""))
    return wall, float(match.group(1)) if match else None


def _measure(client: Any, page: str, api_path: str, runs: int, requests: int) -> dict[str, Any]:
    """Rounds of interleaved page / API requests; per round, the median of each."""
    for _ in range(3):  # warm: templates compiled, caches filled
        _timed(client, page, True)
        _timed(client, api_path, False)
    server, wall, baseline = [], [], []
    for _ in range(runs):
        s, w, b = [], [], []
        for _ in range(requests):
            page_wall, page_server = _timed(client, page, True)
            w.append(page_wall)
            s.append(page_server or float("nan"))
            b.append(_timed(client, api_path, False)[0])
        server.append(statistics.median(s))
        wall.append(statistics.median(w))
        baseline.append(statistics.median(b))
    return {
        "server_ms": summarize(server),
        "wall_ms": summarize(wall),
        "baseline_wall_ms": summarize(baseline),
        "ratio_wall_vs_baseline": summarize([x / y for x, y in zip(wall, baseline, strict=True)]),
    }


def run(config: Config) -> list[dict[str, Any]]:
    runs = config.runs
    requests = config.pick(5, 20)
    with scratch_dir(config, "bench-console-") as work:
        hashes = _prepare(
            work / "data",
            config.pick(DERIVED, DERIVED, smoke=SMOKE_DERIVED),
            config.pick(RAW, RAW, smoke=SMOKE_RAW),
        )
        with api_server(work) as server, server.client(timeout=120) as client:
            lineage = client.get(f"/v1/lineage/{hashes['raw']}?direction=down").json()
            nodes = len(lineage["nodes"])
            datasets = client.get("/v1/datasets?limit=1").json()["count"]
            cold_wall, cold_server = _timed(client, "/datasets", True)  # reads every name once
            figures = {
                "record_page": _measure(
                    client, f"/models/{hashes['model']}", f"/v1/models/{hashes['model']}",
                    runs, requests,
                ),
                "lineage_page": _measure(
                    client,
                    f"/lineage/{hashes['raw']}?direction=down",
                    f"/v1/lineage/{hashes['raw']}?direction=down",
                    runs, max(2, requests // 2),
                ),
                "list_page": _measure(
                    client, "/datasets", "/v1/datasets?limit=50", runs, requests
                ),
                "filtered_list_page": _measure(
                    client, "/datasets?q=bench-99&status=standing&sort=oldest&page=2",
                    "/v1/datasets?limit=50&offset=50", runs, requests,
                ),
            }  # fmt: skip
    record, graph = figures["record_page"], figures["lineage_page"]
    listed, filtered = figures["list_page"], figures["filtered_list_page"]
    rows = [
        [
            "model page `/models/{hash}`",
            fmt(record["server_ms"]["median"]),
            fmt(record["wall_ms"]["median"]),
            f"`GET /v1/models/{{hash}}` {fmt(record['baseline_wall_ms']['median'])}",
            fmt(record["ratio_wall_vs_baseline"]["median"]),
            "≤ 50 ms",
        ],
        [
            f"lineage page, {nodes:,} nodes",
            fmt(graph["server_ms"]["median"]),
            fmt(graph["wall_ms"]["median"]),
            f"`GET /v1/lineage/{{hash}}` {fmt(graph['baseline_wall_ms']['median'])}",
            fmt(graph["ratio_wall_vs_baseline"]["median"]),
            "≤ 300 ms",
        ],
        *(
            [
                f"{label}, {datasets:,} datasets",
                fmt(figure["server_ms"]["median"]),
                fmt(figure["wall_ms"]["median"]),
                f"`GET /v1/datasets?limit=50` {fmt(figure['baseline_wall_ms']['median'])}",
                fmt(figure["ratio_wall_vs_baseline"]["median"]),
                "≤ 50 ms",
            ]
            for label, figure in (
                ("list page `/datasets`", listed),
                ("filtered list page (name, status, oldest, page 2)", filtered),
            )
        ),
        [
            f"first list page after a start (reads {datasets:,} names once)",
            fmt(cold_server or float("nan")),
            fmt(cold_wall),
            "—",
            "—",
            "(one-off)",
        ],
    ]
    table = print_table(
        f"Console pages over HTTP, median of {runs} rounds (ms)",
        ["page", "server time", "wall", "baseline: JSON API, wall", "ratio (wall)", "target"],
        rows,
    )
    figures["first_list_page"] = {"server_ms": cold_server, "wall_ms": cold_wall}
    write_results(
        "console", {"lineage_nodes": nodes, "datasets": datasets, "figures": figures}, [table]
    )
    return [
        {
            "benchmark": "console",
            "figure": "record page server time (ms)",
            "measured": fmt(record["server_ms"]["median"]),
            "baseline": f"JSON API {fmt(record['baseline_wall_ms']['median'])} ms wall",
            "ratio": fmt(record["ratio_wall_vs_baseline"]["median"]),
            "target": "<= 50 ms",
            "met": record["server_ms"]["median"] <= 50,
        },
        {
            "benchmark": "console",
            "figure": f"{nodes:,}-node lineage page server time (ms)",
            "measured": fmt(graph["server_ms"]["median"]),
            "baseline": f"JSON API {fmt(graph['baseline_wall_ms']['median'])} ms wall",
            "ratio": fmt(graph["ratio_wall_vs_baseline"]["median"]),
            "target": "<= 300 ms",
            "met": graph["server_ms"]["median"] <= 300,
        },
        {
            "benchmark": "console",
            "figure": f"list page over {datasets:,} datasets server time (ms)",
            "measured": fmt(listed["server_ms"]["median"]),
            "baseline": f"JSON API {fmt(listed['baseline_wall_ms']['median'])} ms wall",
            "ratio": fmt(listed["ratio_wall_vs_baseline"]["median"]),
            "target": "<= 50 ms",
            "met": listed["server_ms"]["median"] <= 50,
        },
    ]

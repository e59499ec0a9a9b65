"""Training over HTTP: a ridge model on the 442-row diabetes data, trained and registered.

Two real ``provenance serve`` processes on loopback, embedded chain, one client sending one
``POST /v1/models`` at a time (each with another seed, so each is a new model, trained and
registered on chain):

* **subject**: the service as it is, training in its warm worker processes, each job bounded
  in time and memory (``ml/training_pool.py``);
* **baseline**, in the same run, rounds interleaved: the same service training in its own
  threads, unbounded, as before issue 19 (``bench/_inline_training.py``).

Figure: models per second, the median of ``runs`` rounds; the ratio subject/baseline per pair of
rounds. Target (issue 19): at least 0.8 times the baseline.
"""

from __future__ import annotations

import io
import time
from typing import Any

from sklearn.datasets import load_diabetes

from bench._common import (
    Config,
    fmt,
    paired_ratio,
    print_table,
    scratch_dir,
    summarize,
    write_results,
)
from bench._server import Server, api_server

__all__ = ["run"]

TARGET = 0.8


def diabetes_csv() -> bytes:
    """scikit-learn's bundled diabetes data (442 rows, 10 features) as CSV."""
    data = load_diabetes()
    out = io.StringIO()
    out.write(",".join([*data.feature_names, "target"]) + "\n")
    for row, target in zip(data.data, data.target, strict=True):
        out.write(",".join(repr(float(v)) for v in row) + f",{float(target)!r}\n")
    return out.getvalue().encode()


def _models_per_second(server: Server, dataset: str, seeds: range) -> float:
    with server.client() as api:
        started = time.perf_counter()
        for seed in seeds:
            response = api.post(
                "/v1/models",
                json={"dataset": dataset, "algorithm": "ridge", "target": "target", "seed": seed},
            )
            assert response.status_code == 201, response.text
        return len(seeds) / (time.perf_counter() - started)


def _upload(server: Server, csv: bytes) -> str:
    with server.client() as api:
        response = api.post("/v1/datasets", files={"file": ("diabetes.csv", csv)})
        assert response.status_code == 201, response.text
        dataset = response.json()["content_hash"]
        _models_per_second(server, dataset, range(10**6, 10**6 + 3))  # warm both paths
        return dataset


def run(config: Config) -> list[dict[str, Any]]:
    per_round = config.pick(30, 100, smoke=5)
    csv = diabetes_csv()
    subject, baseline = [], []
    with (
        scratch_dir(config, "bench-training-") as work,
        api_server(work / "pool") as pooled,
        api_server(work / "inline", module="bench._inline_training") as inline,
    ):
        datasets = {"pool": _upload(pooled, csv), "inline": _upload(inline, csv)}
        for round_ in range(config.runs):
            seeds = range(round_ * per_round, (round_ + 1) * per_round)
            subject.append(_models_per_second(pooled, datasets["pool"], seeds))
            baseline.append(_models_per_second(inline, datasets["inline"], seeds))
    rate, base = summarize(subject), summarize(baseline)
    ratio = paired_ratio(subject, baseline)
    table = print_table(
        f"Training over HTTP: ridge on diabetes (442 rows), 1 client, {per_round} models a round",
        ["service", "models/s (median)", "spread (min-max)", "ratio to baseline"],
        [
            ["training processes (bounded)", fmt(rate["median"]),
             f"{fmt(rate['min'])}-{fmt(rate['max'])}", fmt(ratio["median"])],
            ["in-process threads (before issue 19)", fmt(base["median"]),
             f"{fmt(base['min'])}-{fmt(base['max'])}", "1"],
        ],
    )  # fmt: skip
    write_results(
        "training",
        {"models_per_second": rate, "baseline_models_per_second": base, "ratio": ratio},
        [table],
    )
    return [
        {
            "benchmark": "training",
            "figure": "ridge models/s over HTTP, bounded training processes",
            "measured": fmt(rate["median"]),
            "baseline": f"{fmt(base['median'])} in-process",
            "ratio": fmt(ratio["median"]),
            "target": f">= {TARGET}x",
            "met": ratio["median"] >= TARGET,
        }
    ]

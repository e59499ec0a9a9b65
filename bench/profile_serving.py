"""Profile the service under the load of ``bench.bench_serving`` with py-spy (the ``profile``
extra: ``pip install -e ".[profile]"``), for the figures BENCHMARKS.md gives per component:

    python -m bench.profile_serving OUT.txt [--rows 100] [--requests 40] [--gil]

A fresh ``provenance serve`` (rate limits off, as in the benchmark) gets the diabetes ridge
model, then 4 clients send ``--requests`` requests of ``--rows`` rows each while py-spy samples
the server at 200 Hz; OUT.txt is py-spy's raw (collapsed stacks) output, and the service's CPU
time per row is printed. ``--gil`` samples only the thread holding the GIL (CPU in Python, not
waits on the disk or on locks).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench._common import cpu_seconds, py_spy_sampling
from bench._server import api_server
from bench.bench_receipts import load
from bench.bench_serving import _NO_RATE_LIMITS, _setup, diabetes


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_serving")
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--requests", type=int, default=40, help="per client")
    parser.add_argument("--gil", action="store_true")
    args = parser.parse_args()
    csv, rows = diabetes()

    def body(i: int) -> dict[str, list[dict[str, float]]]:
        return {"rows": [rows[(i * args.rows + k) % len(rows)] for k in range(args.rows)]}

    with (
        tempfile.TemporaryDirectory() as work,
        api_server(Path(work) / "service", _NO_RATE_LIMITS) as server,
        server.client() as http,
    ):
        path = f"/v1/models/{_setup(http, csv)}/predict"
        load(server, path, body, 3)  # warm-up
        with py_spy_sampling(server.pid, args.out, gil=args.gil):
            before = cpu_seconds(server.pid)
            result = load(server, path, body, args.requests)
            cpu = cpu_seconds(server.pid) - before
    rows_done = result["requests"] * args.rows
    print(
        f"{rows_done / result['wall_s']:.0f} rows/s; service CPU {cpu / rows_done * 1e6:.1f} us/row"
    )


if __name__ == "__main__":
    main()

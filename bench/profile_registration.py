"""Profile one client's HTTP registrations on the embedded chain with py-spy (the ``profile``
extra: ``pip install -e ".[profile]"``), the path of the "embedded-disk | HTTP API" row of
``python -m bench --only registration``:

    python -m bench.profile_registration OUT.txt [--uploads 300] [--gil]

A fresh ``provenance serve`` (default settings, its chain on disk under a new data directory)
gets ``--uploads`` small fresh CSVs, one after another from one client, as the benchmark sends
them, while py-spy samples the server at 200 Hz; OUT.txt is py-spy's raw (collapsed stacks)
output, and the rate and the service's CPU time per upload are printed. ``--gil`` samples only
the thread holding the GIL.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench._common import cpu_seconds, py_spy_sampling
from bench._server import api_server
from bench.bench_registration import _api_op


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_registration")
    parser.add_argument("out", type=Path)
    parser.add_argument("--uploads", type=int, default=300)
    parser.add_argument("--gil", action="store_true")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as work,
        api_server(Path(work) / "service") as server,
        server.client() as http,
    ):
        upload = _api_op(http)
        for _ in range(5):  # warm-up: imports, caches, the first blocks
            upload()
        with py_spy_sampling(server.pid, args.out, gil=args.gil):
            before = cpu_seconds(server.pid)
            start = time.perf_counter()
            for _ in range(args.uploads):
                upload()
            wall = time.perf_counter() - start
            cpu = cpu_seconds(server.pid) - before
    print(
        f"{args.uploads / wall:.1f} uploads/s; service CPU {cpu / args.uploads * 1e3:.2f} ms/upload"
    )


if __name__ == "__main__":
    main()

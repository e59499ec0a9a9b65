"""One replica on PostgreSQL against the single SQLite process, on the same kind of anvil node
(automining): what issue 22's fifth part profiled.

    python -m bench.profile_replica [--single 100] [--clients 16] [--uploads 8] [--py-spy DIR]

For each setup (``sqlite``, then ``pg-1``, each started as :func:`bench.bench_replicas.replicas`
starts it): ``--single`` uploads from one client one at a time (median milliseconds and the
service's CPU per upload), then ``--clients`` clients x ``--uploads`` uploads at once (uploads
per second, the service's CPU per upload, and how many transactions carried them: the
gathering). With ``--py-spy DIR``, py-spy (``--gil``) samples the service during each part
into ``DIR/<setup>-<part>.txt``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from bench._common import cpu_seconds, py_spy_sampling
from bench._gathered import unique_csv
from bench.bench_replicas import _ok, registrations, replicas
from ledger.chain.devnode import AnvilNode


def _transactions(node: AnvilNode, after: int) -> int:
    head = int(node.rpc("eth_blockNumber"), 16)
    return sum(
        len(node.rpc("eth_getBlockByNumber", hex(n), False)["transactions"])
        for n in range(after + 1, head + 1)
    )


def profile(name: str, count: int | None, args: argparse.Namespace) -> None:
    """Both parts for one setup, printed."""
    with tempfile.TemporaryDirectory(prefix="replica-") as work:
        nodes: list[AnvilNode] = []
        with replicas(Path(work), count, None, nodes) as servers:
            server, node = servers[0], nodes[0]

            def sampled(part: str) -> Any:
                if args.spy is None:
                    return nullcontext()
                return py_spy_sampling(server.pid, args.spy / f"{name}-{part}.txt", gil=True)

            with server.client(timeout=600) as http:
                for _ in range(10):  # warm-up
                    _ok(http.post("/v1/datasets", files={"file": ("d.csv", unique_csv())}), 201)
                taken = []
                with sampled("single"):
                    before = cpu_seconds(server.pid)
                    for _ in range(args.single):
                        started = time.perf_counter()
                        _ok(http.post("/v1/datasets", files={"file": ("d.csv", unique_csv())}), 201)
                        taken.append(1000 * (time.perf_counter() - started))
                    cpu = cpu_seconds(server.pid) - before
            print(f"{name}, one client: median {statistics.median(taken):.1f} ms an upload, "
                  f"service CPU {cpu / args.single * 1e3:.1f} ms an upload")  # fmt: skip
            total = args.clients * args.uploads
            head = int(node.rpc("eth_blockNumber"), 16)
            with sampled("clients"):
                before = cpu_seconds(server.pid)
                rate = registrations([server], args.clients, args.uploads)
                cpu = cpu_seconds(server.pid) - before
            print(f"{name}, {args.clients} clients: {rate:.1f} uploads/s, service CPU "
                  f"{cpu / total * 1e3:.1f} ms an upload, {total} uploads in "
                  f"{_transactions(node, head)} transactions")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_replica")
    parser.add_argument("--single", type=int, default=100)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--uploads", type=int, default=8)
    parser.add_argument("--py-spy", type=Path, dest="spy")
    args = parser.parse_args()
    for name, count in (("sqlite", None), ("pg-1", 1)):
        profile(name, count, args)


if __name__ == "__main__":
    main()

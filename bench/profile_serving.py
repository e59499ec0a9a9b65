"""Profile the service under the load of ``bench.bench_serving`` with py-spy (the ``profile``
extra: ``pip install -e ".[profile]"``), for the figures BENCHMARKS.md gives per component:

    python -m bench.profile_serving OUT.txt [--rows 100] [--requests 40] [--gil]

A fresh ``provenance serve`` (rate limits off, as in the benchmark) gets the diabetes ridge
model, then 4 clients send ``--requests`` requests of ``--rows`` rows each while py-spy samples
the server at 200 Hz; OUT.txt is py-spy's raw (collapsed stacks) output, and the service's CPU
time per row is printed, in all and per thread (user and system time from ``/proc``, the threads
named by ``py-spy dump``: the event loop is ``MainThread``, the request path the ``AnyIO worker
thread``s, anchoring ``anchorer``). ``--gil`` samples only the thread holding the GIL (CPU in
Python, not waits on the disk or on locks); the per-thread times count everything, the kernel's
work for the thread included (the receipt book's writes and fsyncs are system time).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench._common import cpu_seconds, py_spy_sampling
from bench._server import api_server
from bench.bench_receipts import load
from bench.bench_serving import _NO_RATE_LIMITS, _setup, diabetes


def thread_times(pid: int) -> dict[str, tuple[int, int]]:
    """Each thread's (user, system) clock ticks so far, by thread id."""
    times = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        times[tid] = (int(fields[11]), int(fields[12]))
    return times


def thread_names(pid: int) -> dict[str, str]:
    """Python's names of the process's threads, by thread id (from ``py-spy dump``)."""
    py_spy = str(Path(sys.executable).with_name("py-spy"))
    dump = subprocess.run([py_spy, "dump", "--pid", str(pid)], capture_output=True, text=True)
    found = re.finditer(r'^Thread (\d+) \([^)]*\): "([^"]*)"', dump.stdout, re.MULTILINE)
    return {match.group(1): match.group(2) for match in found}


def per_thread(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], names: dict[str, str]
) -> dict[str, float]:
    """Seconds of CPU between two :func:`thread_times`, by thread name and user/system."""
    tick = os.sysconf("SC_CLK_TCK")
    spent: collections.Counter[str] = collections.Counter()
    for tid, (user, system) in after.items():
        user0, system0 = before.get(tid, (0, 0))
        name = names.get(tid, "(ended)")
        spent[f"{name} user"] += (user - user0) / tick
        spent[f"{name} system"] += (system - system0) / tick
    return dict(spent)


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
            before, threads_before = cpu_seconds(server.pid), thread_times(server.pid)
            result = load(server, path, body, args.requests)
            cpu = cpu_seconds(server.pid) - before
            threads_after = thread_times(server.pid)
        threads = per_thread(threads_before, threads_after, thread_names(server.pid))
    rows_done = result["requests"] * args.rows
    print(
        f"{rows_done / result['wall_s']:.0f} rows/s; service CPU {cpu / rows_done * 1e6:.1f} us/row"
    )
    for name, seconds in sorted(threads.items(), key=lambda item: -item[1]):
        if seconds > 0:
            print(f"  {name}: {seconds / rows_done * 1e6:.1f} us/row")


if __name__ == "__main__":
    main()

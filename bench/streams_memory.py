"""Where a sealing stream's memory goes (issue 27: the service grew from 231 to 277 MB over
10,000,000 readings): the service in this process on the embedded chain, readings sent and
sealed through the HTTP API, 1,000 a seal. Over ``--seals`` seals after ``--warmup``: the
growth of the process's RSS and of SQLite's own memory (``sqlite3_memory_used``), what
``malloc_trim`` gives back, how full the bounded caches that grow a block or a seal are (the
embedded chain store's committed values, the write pipeline's recent writes), and the seal's
latency (median of the first and of the last 50:
flat when a seal's cost does not grow with the stream). Then, over ``--traced`` more seals
(``tracemalloc`` on: its own bookkeeping is RSS too, so it is kept out of the first figures),
the Python objects made then and still alive, and the places that made the most of them: not
the growth where a bounded cache is full, since what it let go was made before the tracing.

Run: ``python -m bench.streams_memory`` (300 seals after 100, then 100 traced: about a minute).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from ledger.chain.backends._chaindb import _CACHE_ENTRIES

__all__ = ["main"]

_LIBC = ctypes.CDLL("libc.so.6")
_SQLITE = ctypes.CDLL("libsqlite3.so.0")
_SQLITE.sqlite3_memory_used.restype = ctypes.c_int64


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _sqlite_mb() -> float:
    return float(_SQLITE.sqlite3_memory_used()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--warmup", type=int, default=100, help="seals before the first look")
    parser.add_argument("--seals", type=int, default=300, help="seals measured")
    parser.add_argument("--traced", type=int, default=100, help="seals traced after those")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", anchor_interval=3600)
        with TestClient(create_app(settings)) as api:
            key = (settings.data_dir / "admin.key").read_text().strip()
            api.headers["Authorization"] = f"Bearer {key}"
            columns = [{"name": "seq", "type": "integer"}, {"name": "value", "type": "float"}]
            body = {"name": "m", "columns": columns, "seal_readings": 1000, "seal_seconds": 3600}
            assert api.post("/v1/streams", json=body).status_code == 201
            sent = 0

            def seal(times: int) -> list[float]:
                nonlocal sent
                latencies = []
                for _ in range(times):
                    readings = [
                        {"id": f"r{i}", "seq": i, "value": i / 3} for i in range(sent, sent + 1000)
                    ]
                    sent += 1000
                    assert api.post("/v1/streams/m/readings", json=readings).status_code == 202
                    started = time.perf_counter()
                    assert api.post("/v1/streams/m/seal").status_code in (200, 202)
                    latencies.append(time.perf_counter() - started)
                return latencies

            def caches() -> tuple[int, int]:  # their private containers: a bench looks inside
                core = api.app.state.service.core
                return len(core.backend._store._cache), len(core.writes._recent)

            recent_bound = api.app.state.service.core.writes._recent_size

            seal(args.warmup)
            gc.collect()
            rss, sqlite, (values, recent) = _rss_mb(), _sqlite_mb(), caches()
            latencies = seal(args.seals)
            gc.collect()
            grown_rss, grown_sqlite = _rss_mb() - rss, _sqlite_mb() - sqlite
            values_after, recent_after = caches()
            _LIBC.malloc_trim(0)
            trimmed = grown_rss - (_rss_mb() - rss)
            tracemalloc.start(1)
            seal(args.traced)
            gc.collect()
            held = tracemalloc.take_snapshot()
            alive = sum(stat.size for stat in held.statistics("filename")) / 1e6
    first, last = (statistics.median(part) * 1e3 for part in (latencies[:50], latencies[-50:]))
    print(f"over {args.seals} seals of 1,000 readings (after {args.warmup}):")
    print(f"  RSS                          +{grown_rss:6.1f} MB")
    print(f"  SQLite's own memory          +{grown_sqlite:6.1f} MB")
    print(f"  given back by malloc_trim     {trimmed:6.1f} MB")
    chain = f"{values:,} -> {values_after:,} (bound {_CACHE_ENTRIES:,})"
    writes = f"{recent:,} -> {recent_after:,} (bound {recent_bound:,})"
    print(f"  chain store's cached values    {chain}")
    print(f"  write pipeline's recent writes {writes}")
    print(f"  seal latency, median of the first / last 50: {first:.1f} / {last:.1f} ms")
    per_seal = alive * 1e3 / args.traced
    print(f"over {args.traced} more, traced:")
    print(f"  Python objects made, still alive {alive:6.1f} MB ({per_seal:.0f} KB a seal)")
    print("  where the live Python objects were made:")
    for stat in held.statistics("lineno")[:8]:
        print(f"    {stat.size / 1e3:8.0f} KB  {stat.traceback[0]}")


if __name__ == "__main__":
    main()

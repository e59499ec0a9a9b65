"""Where a sealing stream's memory goes (issue 27: the service grew from 231 to 277 MB over
10,000,000 readings): the service in this process on the embedded chain, readings sent and
sealed through the HTTP API, 1,000 a seal; between seal ``--warmup`` and the last, the growth
of the process's RSS, of the Python objects still alive (``tracemalloc``, with the places
that hold the most), of SQLite's own memory (``sqlite3_memory_used``), and what
``malloc_trim`` gives back.

Run: ``python -m bench.streams_memory`` (300 seals after 100, a few minutes).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import tempfile
import tracemalloc
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings

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

            def seal(times: int) -> None:
                nonlocal sent
                for _ in range(times):
                    readings = [
                        {"id": f"r{i}", "seq": i, "value": i / 3} for i in range(sent, sent + 1000)
                    ]
                    sent += 1000
                    assert api.post("/v1/streams/m/readings", json=readings).status_code == 202
                    assert api.post("/v1/streams/m/seal").status_code in (200, 202)

            seal(args.warmup)
            gc.collect()
            tracemalloc.start(1)
            rss, sqlite = _rss_mb(), _sqlite_mb()
            seal(args.seals)
            gc.collect()
            held = tracemalloc.take_snapshot()
            grown_rss, grown_sqlite = _rss_mb() - rss, _sqlite_mb() - sqlite
            alive = sum(stat.size for stat in held.statistics("filename")) / 1e6
            _LIBC.malloc_trim(0)
            trimmed = grown_rss - (_rss_mb() - rss)
    print(f"over {args.seals} seals of 1,000 readings (after {args.warmup}):")
    print(f"  RSS                          +{grown_rss:6.1f} MB")
    per_seal = alive * 1e3 / args.seals
    print(f"  Python objects still alive   +{alive:6.1f} MB ({per_seal:.0f} KB a seal)")
    print(f"  SQLite's own memory          +{grown_sqlite:6.1f} MB")
    print(f"  given back by malloc_trim     {trimmed:6.1f} MB")
    print("  where the live Python objects were made:")
    for stat in held.statistics("lineno")[:8]:
        print(f"    {stat.size / 1e3:8.0f} KB  {stat.traceback[0]}")


if __name__ == "__main__":
    main()

"""What a replica on PostgreSQL sends the server per upload, counted by the server itself
(issue 22: on 2 cores, each round trip costs the service ~0.1 ms of CPU, and the server as much).

    python -m bench.pg_round_trips [--uploads 40] [--clients 1]
                                   [--log /var/log/postgresql/postgresql-15-main.log]

One replica (``pg-1`` of :mod:`bench.bench_replicas`: anvil automining, a scratch database)
takes a few uploads to warm up, then ``--uploads`` more from one client, one at a time (or
shared by ``--clients`` at once, as :mod:`bench.bench_replicas` sends them), while
the scratch database logs every statement (``ALTER DATABASE ... SET log_statement = 'all'``, so
only its sessions are logged). The statements the server logged meanwhile are counted from its
log file (``--log``, which this process must be able to read: run it as root or as postgres):
statements per upload, and the most frequent ones. Then the client's CPU for one statement,
2,000 times each way, in this process: by libpq alone, by psycopg's ``execute``, read on its
own (:meth:`PgConnections.query`) and in a read transaction (:meth:`PgConnections.read`).
"""

from __future__ import annotations

import argparse
import collections
import re
import resource
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

import bench.bench_replicas as replicas_bench
from bench._gathered import unique_csv
from ledger.storage.postgres import PgConnections

_LOGGED = re.compile(r"LOG:  (?:statement|execute [^:]*): (.*)")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def count(uploads: int, log: Path, clients: int = 1) -> None:
    scratch = replicas_bench.scratch_database

    @contextmanager
    def logged() -> Iterator[str]:
        with scratch() as url:
            with psycopg.connect(replicas_bench.PG_ADMIN, autocommit=True) as admin:
                admin.execute(f"ALTER DATABASE {url.rsplit('/', 1)[1]} SET log_statement = 'all'")
            yield url

    replicas_bench.scratch_database = logged  # type: ignore[assignment]
    try:
        with (
            tempfile.TemporaryDirectory(prefix="pg-round-trips-") as work,
            replicas_bench.replicas(Path(work), 1, None) as servers,
            servers[0].client(timeout=600) as http,
        ):

            def upload() -> None:
                files = {"file": ("d.csv", unique_csv())}
                replicas_bench._ok(http.post("/v1/datasets", files=files), 201)

            for _ in range(5):  # warm-up: the first writes set up keys, nonces, caches
                upload()
            time.sleep(1)
            start = log.stat().st_size
            if clients == 1:
                for _ in range(uploads):
                    upload()
            else:  # as bench_replicas sends them: each client its share, all at once
                replicas_bench.registrations(servers, clients, uploads // clients)
                uploads = clients * (uploads // clients)
            time.sleep(0.5)  # the sender's last commits
            with log.open("rb") as text:
                text.seek(start)
                logged_text = text.read().decode(errors="replace")
    finally:
        replicas_bench.scratch_database = scratch  # type: ignore[assignment]
    statements = [re.sub(r"\s+", " ", s)[:100] for s in _LOGGED.findall(logged_text)]
    print(f"{len(statements)} statements for {uploads} uploads: {len(statements) / uploads:.1f} "
          "an upload (the pool's empty check queries included)")  # fmt: skip
    for statement, times in collections.Counter(statements).most_common(24):
        print(f"  {times / uploads:5.2f}  {statement or '(empty query: a pool check)'}")


def micro(calls: int = 2000) -> None:
    """One statement's round trip, CPU and wall a call in this process: by libpq alone, by a
    psycopg ``execute``, and through the stores' ``read()`` and ``query()``."""
    db = PgConnections(replicas_bench.PG_ADMIN, max_size=2)
    raw = psycopg.connect(replicas_bench.PG_ADMIN, autocommit=True)
    sql, params = "SELECT 1 AS x WHERE ? = 'a'", ("b",)

    def in_read() -> None:
        with db.read() as conn:
            conn.execute(sql, params).fetchall()

    ways = (
        ("libpq alone", lambda: raw.pgconn.exec_(b"SELECT 1")),
        (
            "psycopg's execute",
            lambda: raw.execute("SELECT 1 AS x WHERE %s = 'a'", params).fetchall(),
        ),
        ("read()", in_read),
        ("query()", lambda: db.query(sql, params)),
    )
    try:
        for name, one in ways:
            for _ in range(10):  # warm: psycopg prepares a statement on its fifth run
                one()
            wall, cpu = time.perf_counter(), _cpu()
            for _ in range(calls):
                one()
            print(f"one statement through {name}: {1e6 * (time.perf_counter() - wall) / calls:.0f} "
                  f"us wall, {1e6 * (_cpu() - cpu) / calls:.0f} us CPU a call")  # fmt: skip
    finally:
        raw.close()
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pg_round_trips")
    parser.add_argument("--uploads", type=int, default=40)
    parser.add_argument("--clients", type=int, default=1, help="uploading at once")
    parser.add_argument(
        "--log", type=Path, default=Path("/var/log/postgresql/postgresql-15-main.log")
    )
    args = parser.parse_args()
    count(args.uploads, args.log, args.clients)
    micro()


if __name__ == "__main__":
    main()

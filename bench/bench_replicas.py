"""Issue 22's replica figures: registrations/s and verifications/s through 1, 2 and 3 replicas on
PostgreSQL against the single SQLite process, side by side in one run.

    python -m bench.bench_replicas [--clients 16] [--requests 8] [--verifications 40]
                                   [--block-time SECONDS]

Each configuration gets a fresh anvil node (automining unless ``--block-time``: so the figures
show what coordination costs, not how long a block takes), a fresh key and contract, and its
own services:

* ``sqlite``: one ``provenance serve`` with its SQLite files (index, journal, keys) and folder;
* ``pg-N``: N ``provenance serve`` processes on one scratch PostgreSQL database (the machine's
  server at 127.0.0.1:5432: index, keys, deployment, the write queue and journal, one sender
  per key) and one artifacts folder they share, as ``provenance serve --workers N`` runs them.

``clients`` threads, spread round-robin over the replicas, each send ``requests`` uploads of a
fresh small CSV (answered when final); then each sends ``verifications`` verifications of one
anchored receipt (``POST /v1/verify/receipt``). The ratios are against ``sqlite`` (and, for 3
replicas, against 1) of the same run; the targets are 1 replica >= 0.8x SQLite and 3 replicas
>= 0.9x 1 replica (on 2 cores no speed-up is expected from more processes).
"""

from __future__ import annotations

import argparse
import itertools
import os
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from api.devserver import ServiceProcess
from bench._common import fmt, print_table
from bench._gathered import unique_csv
from ledger.chain.backends.rpc import RpcBackend
from ledger.chain.deployment import deploy_ledger
from ledger.chain.devnode import AnvilNode
from ledger.chain.keys import create_keystore
from ledger.storage.postgres import PgConnections, PgDeploymentRecord
from ledger.storage.schema import upgrade

PG_ADMIN = os.environ.get("PROVENANCE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PASSWORD = "benchmark-only password"
HEADERS = ["setup", "registrations/s", "vs sqlite", "vs pg-1", "verifications/s", "vs sqlite",
           "vs pg-1"]  # fmt: skip
TRAIN_CSV = "x1,x2,y\n100,200,5000\n200,300,6000\n300,400,7000\n250,350,6500\n"


@contextmanager
def scratch_database() -> Iterator[str]:
    name = f"provenance_bench_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def replicas(
    work: Path,
    count: int | None,
    block_time: float | None,
    nodes: list[AnvilNode] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[list[Any]]:
    """``count`` replicas on PostgreSQL (None: the single SQLite process), started in order,
    with ``env`` added to theirs; yields their :class:`ServiceProcess` es, the first one's
    admin key shared by all (and appends their node to ``nodes``, for a caller that reads the
    chain too)."""
    with ExitStack() as stack:
        node = stack.enter_context(AnvilNode(work / "anvil", block_time=block_time))
        if nodes is not None:
            nodes.append(node)
        keystore = work / "key.json"
        account = create_keystore(keystore, PASSWORD)
        node.set_balance(account.address, 10**24)
        env = {**(env or {}), "PROVENANCE_CHAIN": "rpc", "PROVENANCE_RPC_URL": node.url,
               "PROVENANCE_KEYSTORE": str(keystore), "PROVENANCE_KEYSTORE_PASSWORD": PASSWORD,
               "PROVENANCE_ANCHOR_INTERVAL": "3600"}  # fmt: skip
        if count is None:
            (work / "r0" / "data").mkdir(parents=True)
            deploy_ledger(RpcBackend(node.url), account, work / "r0" / "data" / "deployment.json")
            count = 1
        else:
            url = stack.enter_context(scratch_database())
            upgrade(url)
            db = PgConnections(url, max_size=2)
            deploy_ledger(RpcBackend(node.url), account, PgDeploymentRecord(db))
            db.close()
            env["PROVENANCE_DATABASE_URL"] = url
            (work / "artifacts").mkdir()
        servers: list[ServiceProcess] = []
        for k in range(count):
            data_dir = work / f"r{k}" / "data"
            data_dir.mkdir(parents=True, exist_ok=True)
            if (work / "artifacts").exists():
                (data_dir / "artifacts").symlink_to(work / "artifacts", target_is_directory=True)
            if servers:
                (data_dir / "admin.key").write_text((servers[0].data_dir / "admin.key").read_text())
            servers.append(stack.enter_context(ServiceProcess(data_dir, env=env)))
        yield servers


def _spread(servers: list[ServiceProcess], clients: int) -> list[ServiceProcess]:
    cycle = itertools.cycle(servers)
    return [next(cycle) for _ in range(clients)]


def _run(targets: list[ServiceProcess], body: Any) -> float:
    """Run ``body(client)`` in one thread per target, released together; seconds taken."""
    barrier = threading.Barrier(len(targets) + 1)
    failures: list[str] = []

    def worker(server: ServiceProcess) -> None:
        with server.client(timeout=600) as http:
            barrier.wait()
            try:
                body(http)
            except Exception as exc:  # reported below; a benchmark must not hide a failure
                failures.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(s,)) for s in targets]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} client(s) failed: {failures[:3]}")
    return took


def _ok(response: httpx.Response, status: int = 200) -> Any:
    if response.status_code != status:
        raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
    return response.json()


def _anchored_receipt(server: ServiceProcess) -> dict[str, Any]:
    """Register, train, predict and anchor through ``server``: one receipt to verify."""
    with server.client(timeout=600) as http:
        data = _ok(http.post("/v1/datasets", files={"file": ("t.csv", TRAIN_CSV)}), 201)
        request = {"dataset": data["content_hash"], "algorithm": "linear_regression",
                   "target": "y", "test_size": 0, "seed": 0}  # fmt: skip
        model = _ok(http.post("/v1/models", json=request), 201)
        rows = {"rows": [{"x1": 1, "x2": 2}]}
        predicted = _ok(http.post(f"/v1/models/{model['model_hash']}/predict", json=rows))
        _ok(http.post("/v1/anchor"))
        return _ok(http.get(f"/v1/receipts/{predicted['receipts'][0]['receipt_id']}"))


def registrations(servers: list[ServiceProcess], clients: int, requests: int) -> float:
    """Uploads of fresh small CSVs answered when final, per second."""

    def register(http: httpx.Client) -> None:
        for _ in range(requests):
            _ok(http.post("/v1/datasets", files={"file": ("d.csv", unique_csv())}), 201)

    return clients * requests / _run(_spread(servers, clients), register)


def verifications(
    servers: list[ServiceProcess], receipt: dict[str, Any], clients: int, checks: int
) -> float:
    """Verifications of one anchored receipt, per second."""

    def verify(http: httpx.Client) -> None:
        for _ in range(checks):
            report = _ok(http.post("/v1/verify/receipt", json={"receipt": receipt}))
            if report["verdict"] != "valid":
                raise RuntimeError(f"not valid: {report}")

    return clients * checks / _run(_spread(servers, clients), verify)


def latency(uploads: int, block_time: float | None) -> None:
    """One client, one upload at a time, answered when final: milliseconds per registration
    on the single SQLite process and on one replica on PostgreSQL (both up at once, taking
    turns by tens)."""
    taken: dict[str, list[float]] = {"sqlite": [], "pg-1": []}
    with ExitStack() as stack:
        running = {}
        for name, count in (("sqlite", None), ("pg-1", 1)):
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="provenance-bench-"))
            running[name] = stack.enter_context(replicas(Path(tmp), count, block_time))[0]
        for _ in range(max(1, uploads // 10)):
            for name, server in running.items():
                with server.client(timeout=600) as http:
                    for _ in range(10):
                        started = time.perf_counter()
                        _ok(http.post("/v1/datasets", files={"file": ("d.csv", unique_csv())}), 201)
                        taken[name].append(1000 * (time.perf_counter() - started))
    for name, values in taken.items():
        print(f"{name}: median {statistics.median(values):.0f} ms a registration "
              f"({len(values)} uploads, one at a time)")  # fmt: skip


SETUPS = (("sqlite", None), ("pg-1", 1), ("pg-2", 2), ("pg-3", 3))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=4, help="uploads per client a round")
    parser.add_argument("--verifications", type=int, default=20, help="per client a round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--block-time", type=float, default=None)
    parser.add_argument(
        "--latency", type=int, default=0, help="instead: N sequential uploads by one client, "
        "sqlite against pg-1, milliseconds each"
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.latency:
        latency(args.latency, args.block_time)
        return
    figures: dict[str, dict[str, list[float]]] = {n: {"reg": [], "ver": []} for n, _ in SETUPS}
    with ExitStack() as stack:
        running = {}
        for name, count in SETUPS:  # all up at once, so every round meets the same load
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="provenance-bench-"))
            running[name] = stack.enter_context(replicas(Path(tmp), count, args.block_time))
        receipts = {name: _anchored_receipt(servers[0]) for name, servers in running.items()}
        for round_ in range(args.rounds):  # the setups take turns, round after round
            for name, servers in running.items():
                figures[name]["reg"].append(registrations(servers, args.clients, args.requests))
                figures[name]["ver"].append(
                    verifications(servers, receipts[name], args.clients, args.verifications)
                )
            print(f"round {round_ + 1}:", {n: [fmt(f["reg"][-1]), fmt(f["ver"][-1])]
                                          for n, f in figures.items()}, flush=True)  # fmt: skip

    def ratio(kind: str, name: str, base: str) -> str:
        pairs = [a / b for a, b in zip(figures[name][kind], figures[base][kind], strict=True)]
        return f"{statistics.median(pairs):.2f}x"

    rows = [
        [
            name,
            fmt(statistics.median(f["reg"])),
            ratio("reg", name, "sqlite"),
            ratio("reg", name, "pg-1"),
            fmt(statistics.median(f["ver"])),
            ratio("ver", name, "sqlite"),
            ratio("ver", name, "pg-1"),
        ]
        for name, f in figures.items()
    ]
    print_table(
        f"replicas: {args.clients} clients, {args.rounds} rounds of {args.requests} uploads and "
        f"{args.verifications} verifications each (anvil, block time "
        f"{args.block_time or 'automine'}); medians, ratios of the same round",
        HEADERS,
        rows,
    )


if __name__ == "__main__":
    main()

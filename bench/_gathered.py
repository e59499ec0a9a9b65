"""Gathered writes (issue 12): many HTTP clients registering datasets at once, one large batch,
and what the chain shows afterwards, on the embedded chain and on anvil with ``--block-time 1``.

Each client is a thread with its own keep-alive ``httpx.Client`` that sends its requests one
after another, each waiting for its answer, as a person's script would: ``POST /v1/datasets``
with one file, or ``POST /v1/datasets/batch`` with several. A run reports records registered
per second over the whole run, the blocks and transactions the service used, and how far the
chain's clock is ahead of the wall clock when it ends (read through the service's ``/rpc``, so
it works for the embedded chain inside the server process as for any node).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import _registry
from bench._common import Chain, Config, RawSender, cpu_seconds, fmt, open_chain
from bench._lean_client import LeanClient, multipart_body, own_cpu_seconds
from bench._server import api_server, rpc_service_env
from ledger.chain.backends.rpc import RpcBackend
from ledger.chain.devnode import AnvilNode

__all__ = [
    "ChainView",
    "LoadResult",
    "gathered_headline",
    "gathered_rows",
    "run_clients",
    "unique_csv",
]


def unique_csv(rows: int = 5) -> bytes:
    """A small CSV no one has uploaded before."""
    salt = os.urandom(8).hex()
    lines = ["id,label,value"] + [f"{i},{salt},{i * 37 % 101}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


class ChainView:
    """The service's chain as ``/rpc`` shows it: head, the service key's nonce, the clock."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.registrar = http.get("/v1/chain").json()["registrar"]

    def _rpc(self, method: str, *params: Any) -> Any:
        answer = self.http.post(
            "/rpc", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        ).json()
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def head(self) -> int:
        return int(self._rpc("eth_blockNumber"), 16)

    def nonce(self) -> int:
        return int(self._rpc("eth_getTransactionCount", self.registrar, "latest"), 16)

    def clock_ahead(self) -> float:
        """Seconds the latest block's timestamp is ahead of the wall clock (negative: behind)."""
        block = self._rpc("eth_getBlockByNumber", "latest", False)
        return int(block["timestamp"], 16) - time.time()


@dataclass(frozen=True)
class LoadResult:
    records: int
    seconds: float
    blocks: int
    transactions: int
    clock_ahead: float
    record_blocks: int  # distinct blocks holding the records registered
    drained: float = 0.0  # seconds until every record was on chain (answered on acceptance)
    client_cpu: float = 0.0  # CPU seconds the clients used while sending (this process)
    service_cpu: float = float("nan")  # CPU seconds the service used meanwhile (given its pid)

    def cpu_ms(self, seconds: float) -> float:
        """CPU milliseconds per record."""
        return 1000 * seconds / self.records if self.records else float("nan")

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds else float("nan")


def run_clients(
    make_client: Any,
    view: ChainView,
    *,
    clients: int,
    requests: int,
    files_per_request: int,
    accepted: bool = False,
    lean: tuple[str, dict[str, str]] | None = None,
    service_pid: int | None = None,
) -> LoadResult:
    """``clients`` threads, each sending ``requests`` requests of ``files_per_request`` fresh
    files, all released together; raises if any file is not answered 201. ``accepted``: one
    file per request, answered on acceptance (``?wait=accepted``, 202): the rate is of answers,
    and the run then waits until every record is on chain (``drained`` seconds).

    ``lean``: ``(url, headers)`` to send with :class:`~bench._lean_client.LeanClient` the
    same bodies, built before the clock starts, instead of ``make_client``'s httpx clients
    (whose own CPU, on the service's cores, was as much as the service's per record).
    ``service_pid``: also measure the service's CPU while the clients send."""
    if lean is not None:
        return _run_lean(
            lean, view, clients, requests, files_per_request, accepted, service_pid, make_client
        )
    start_head, start_nonce = view.head(), view.nonce()
    barrier = threading.Barrier(clients + 1)
    blocks: list[set[int]] = [set() for _ in range(clients)]
    urls: list[list[str]] = [[] for _ in range(clients)]
    failures: list[str] = []

    def client(position: int) -> None:
        with make_client() as http:
            barrier.wait()
            for _ in range(requests):
                if accepted:
                    response = http.post(
                        "/v1/datasets?wait=accepted", files={"file": ("d.csv", unique_csv())}
                    )
                    if response.status_code != 202:
                        failures.append(f"{response.status_code}: {response.text[:300]}")
                        return
                    urls[position].append(response.json()["url"])
                    continue
                if files_per_request == 1:
                    response = http.post("/v1/datasets", files={"file": ("d.csv", unique_csv())})
                    answers = [response.json()] if response.status_code == 201 else []
                else:
                    parts = [
                        ("file", (f"d{i}.csv", unique_csv())) for i in range(files_per_request)
                    ]
                    response = http.post("/v1/datasets/batch", files=parts)
                    data = response.json().get("data", []) if response.status_code == 200 else []
                    answers = [d for d in data if d.get("status") == 201]
                if len(answers) != files_per_request:
                    failures.append(f"{response.status_code}: {response.text[:300]}")
                    return
                blocks[position].update(a["block_number"] for a in answers)

    return _time_clients(
        client, barrier, failures, view, make_client, urls, blocks, start_head, start_nonce,
        records=clients * requests * files_per_request, accepted=accepted,
        service_pid=service_pid,
    )  # fmt: skip


def _time_clients(
    client: Any,
    barrier: threading.Barrier,
    failures: list[str],
    view: ChainView,
    make_client: Any,
    urls: list[list[str]],
    blocks: list[set[int]],
    start_head: int,
    start_nonce: int,
    *,
    records: int,
    accepted: bool,
    service_pid: int | None,
) -> LoadResult:
    """Start one thread per client (``barrier`` has a party for each, plus this one), release
    them together, time them until the last one ends (wall clock, and client and service CPU),
    then :func:`_finish`; raises if any client failed."""
    threads = [threading.Thread(target=client, args=(i,)) for i in range(barrier.parties - 1)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started, cpu = time.perf_counter(), _cpu_now(service_pid)
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    client_cpu, service_cpu = _cpu_since(cpu, service_pid)
    if failures:
        raise RuntimeError(f"{len(failures)} client(s) failed; first: {failures[0]}")
    return _finish(
        view, make_client, urls, blocks, started, seconds, start_head, start_nonce,
        records=records, accepted=accepted, client_cpu=client_cpu, service_cpu=service_cpu,
    )  # fmt: skip


def _cpu_now(service_pid: int | None) -> tuple[float, float]:
    return own_cpu_seconds(), cpu_seconds(service_pid) if service_pid else float("nan")


def _cpu_since(before: tuple[float, float], service_pid: int | None) -> tuple[float, float]:
    now = _cpu_now(service_pid)
    return now[0] - before[0], now[1] - before[1]


def _run_lean(
    lean: tuple[str, dict[str, str]],
    view: ChainView,
    clients: int,
    requests: int,
    files_per_request: int,
    accepted: bool,
    service_pid: int | None,
    make_client: Any,
) -> LoadResult:
    """:func:`run_clients` with :class:`LeanClient` threads and bodies built beforehand."""
    url, headers = lean
    start_head, start_nonce = view.head(), view.nonce()
    bodies = [
        [
            multipart_body([(f"d{i}.csv", unique_csv()) for i in range(files_per_request)])
            for _ in range(requests)
        ]
        for _ in range(clients)
    ]
    path = (
        "/v1/datasets?wait=accepted"
        if accepted
        else "/v1/datasets"
        if files_per_request == 1
        else "/v1/datasets/batch"
    )
    barrier = threading.Barrier(clients + 1)
    blocks: list[set[int]] = [set() for _ in range(clients)]
    urls: list[list[str]] = [[] for _ in range(clients)]
    failures: list[str] = []

    def client(position: int) -> None:
        with LeanClient(url, headers) as http:
            barrier.wait()
            for body, content_type in bodies[position]:
                status, answer = http.post(path, body, content_type)
                if accepted:
                    if status != 202:
                        failures.append(f"{status}: {str(answer)[:300]}")
                        return
                    urls[position].append(answer["url"])
                    continue
                if files_per_request == 1:
                    answers = [answer] if status == 201 else []
                else:
                    data = answer.get("data", []) if status == 200 else []
                    answers = [d for d in data if d.get("status") == 201]
                if len(answers) != files_per_request:
                    failures.append(f"{status}: {str(answer)[:300]}")
                    return
                blocks[position].update(a["block_number"] for a in answers)

    return _time_clients(
        client, barrier, failures, view, make_client, urls, blocks, start_head, start_nonce,
        records=clients * requests * files_per_request, accepted=accepted,
        service_pid=service_pid,
    )  # fmt: skip


def _finish(
    view: ChainView,
    make_client: Any,
    urls: list[list[str]],
    blocks: list[set[int]],
    started: float,
    seconds: float,
    start_head: int,
    start_nonce: int,
    *,
    records: int,
    accepted: bool,
    client_cpu: float,
    service_cpu: float,
) -> LoadResult:
    """Wait until every accepted record is on chain (if ``accepted``), then read the chain."""
    drained = seconds
    if accepted:
        drained = _drained(make_client, urls, blocks[0]) - started
    return LoadResult(
        records=records,
        seconds=seconds,
        blocks=view.head() - start_head,
        transactions=view.nonce() - start_nonce,
        clock_ahead=view.clock_ahead(),
        record_blocks=len(set().union(*blocks)),
        drained=drained,
        client_cpu=client_cpu,
        service_cpu=service_cpu,
    )


def _drained(make_client: Any, urls: list[list[str]], blocks: set[int]) -> float:
    """When every accepted record was on chain (a ``perf_counter`` time), noting their blocks.

    Each client's last answered record is awaited first, and the time they are all registered
    is taken; then every record is read (thousands of GETs, seconds of their own, which are not
    the chain's time). Only if one of the earlier records was not registered yet is the time
    moved on to when it was: the figure is never earlier than the truth."""

    def wait_for(http: Any, url: str) -> bool:
        """Whether it had to wait for ``url``'s record."""
        waited = False
        while (answer := http.get(url)).status_code != 200:
            waited = True
            time.sleep(0.05)
        blocks.add(answer.json()["block_number"])
        return waited

    with make_client() as http:
        for url in (per[-1] for per in urls if per):
            wait_for(http, url)
        drained = time.perf_counter()
        for url in (u for per in urls for u in per[:-1]):
            if wait_for(http, url):
                drained = time.perf_counter()
    return drained


# (clients, requests per client, files per request)
_LOADS_QUICK = [(1, 4, 1), (8, 1, 1), (32, 1, 1), (8, 1, 10), (32, 1, 10)]
_LOADS_FULL = [(1, 20, 1), (8, 4, 1), (32, 3, 1), (8, 3, 10), (32, 3, 10)]
_LOADS_SMOKE = [(1, 1, 1), (8, 1, 10)]


def _baseline_threads(chain: Chain, address: str, threads: int, each: int) -> float:
    """Registry writes per second from ``threads`` threads, one transaction per record, each
    thread with its own key and nonce (raw transactions, waiting for each receipt)."""
    senders = [RawSender(chain.backend, chain.account()) for _ in range(threads)]

    def work(sender: RawSender) -> None:
        for _ in range(each):
            sender.send(address, _registry.register_data(os.urandom(32)), _registry.GAS_LIMIT)

    workers = [threading.Thread(target=work, args=(sender,)) for sender in senders]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return threads * each / (time.perf_counter() - start)


def _load_row(chain: str, what: str, result: LoadResult, baseline: str) -> dict[str, Any]:
    return {
        "chain": chain,
        "what": what,
        "records": result.records,
        "seconds": result.seconds,
        "per_second": result.per_second,
        "blocks": result.blocks,
        "record_blocks": result.record_blocks,
        "transactions": result.transactions,
        "clock_ahead": result.clock_ahead,
        "cells": [
            chain,
            what,
            fmt(result.per_second),
            str(result.records),
            f"{result.record_blocks} / {result.blocks}",
            str(result.transactions),
            f"{result.clock_ahead:+.1f}",
            baseline,
        ],
    }


def _batch_run(http: Any, view: ChainView, files: int) -> LoadResult:
    """One ``POST /v1/datasets/batch`` of ``files`` fresh small files."""
    start_head, start_nonce = view.head(), view.nonce()
    parts = [("file", (f"d{i}.csv", unique_csv(3))) for i in range(files)]
    started = time.perf_counter()
    response = http.post("/v1/datasets/batch", files=parts)
    seconds = time.perf_counter() - started
    data = response.json().get("data", []) if response.status_code == 200 else []
    if sum(d.get("status") == 201 for d in data) != files:
        raise RuntimeError(f"batch answered {response.status_code}: {response.text[:300]}")
    return LoadResult(
        records=files,
        seconds=seconds,
        blocks=view.head() - start_head,
        transactions=view.nonce() - start_nonce,
        clock_ahead=view.clock_ahead(),
        record_blocks=len({d["block_number"] for d in data}),
    )


def _gathered_on(config: Config, name: str, server: Any, chain: Chain) -> list[dict[str, Any]]:
    rows = []
    loads = config.pick(_LOADS_QUICK, _LOADS_FULL, smoke=_LOADS_SMOKE)
    baseline_each = config.pick(2, 5, smoke=1)
    address = RawSender(chain.backend, chain.account()).deploy(_registry.BYTECODE)
    one = _baseline_threads(chain, address, 1, baseline_each)
    many = {n: _baseline_threads(chain, address, n, baseline_each) for n in (8, 32)}
    with server.client(timeout=600) as http:
        view = ChainView(http)
        for clients, requests, files in loads:
            result = run_clients(
                lambda: server.client(timeout=600),
                view,
                clients=clients,
                requests=requests,
                files_per_request=files,
            )
            what = f"{clients} client(s), {files} file(s)/request"
            baseline = f"{fmt(one if clients == 1 else many[clients])}/s"
            rows.append(_load_row(name, what, result, baseline))
        if chain.node is not None:  # answered on acceptance: RPC nodes only
            requests = config.pick(2, 10, smoke=1)
            result = run_clients(
                lambda: server.client(timeout=600),
                view,
                clients=32,
                requests=requests,
                files_per_request=1,
                accepted=True,
            )
            drained = result.records / result.drained
            rows.append(
                _load_row(
                    name,
                    f"32 client(s), 1 file(s)/request, answered on acceptance "
                    f"(all on chain at {fmt(drained)}/s)",
                    result,
                    f"{fmt(many[32])}/s",
                )
            )
        files = config.pick(100, 1000, smoke=20)
        result = _batch_run(http, view, files)
        rows.append(_load_row(name, f"one batch of {files} files", result, "-"))
    return rows


def gathered_rows(config: Config, anvil: bool, work: Path) -> list[dict[str, Any]]:
    """Concurrent clients and one large batch on the embedded chain and on anvil with
    ``--block-time 1``."""
    rows = []
    with (
        open_chain("embedded-disk", work / "gathered-embedded-baseline") as chain,
        api_server(work / "gathered-embedded") as server,
    ):
        rows += _gathered_on(config, "embedded-disk", server, chain)
    if anvil:
        with AnvilNode(work / "anvil-1s", block_time=1) as node:
            chain = Chain("anvil-1s", RpcBackend(node.url, timeout=30), node)
            env = rpc_service_env(node, work / "gathered-anvil")
            with api_server(work / "gathered-anvil", env) as server:
                rows += _gathered_on(config, "anvil --block-time 1", server, chain)
    return rows


def gathered_headline(rows: list[dict[str, Any]], *, full: bool) -> list[dict[str, Any]]:
    """The targets of issue 12; the throughput and block targets are judged on a full run (a
    quick run sends one request per client, so one block's wait is most of it)."""
    headline = []
    embedded = [r for r in rows if r["chain"] == "embedded-disk"]
    if embedded:
        worst = max(r["clock_ahead"] for r in embedded)
        headline.append(
            {
                "benchmark": "registration",
                "figure": "embedded chain: clock ahead of the wall clock after every run, s",
                "measured": f"{worst:+.1f} (worst of {len(embedded)})",
                "target": "<= 1",
                "met": worst <= 1,
            }
        )
    paced = [r for r in rows if r["chain"].startswith("anvil")]
    for r in paced:
        if r["what"].startswith("32 client") and "10 file" in r["what"]:
            headline.append(
                {
                    "benchmark": "registration",
                    "figure": f"anvil --block-time 1, {r['what']}, records/s",
                    "measured": fmt(r["per_second"]),
                    "target": ">= 200" if full else "(>= 200 in a full run)",
                    "met": r["per_second"] >= 200 if full else None,
                }
            )
        if r["what"].startswith("one batch"):
            headline.append(
                {
                    "benchmark": "registration",
                    "figure": f"anvil --block-time 1, {r['what']}: blocks holding them",
                    "measured": str(r["record_blocks"]),
                    "target": "<= 3" if full else "(1,000 files, <= 3, in a full run)",
                    "met": r["record_blocks"] <= 3 if full else None,
                }
            )
    return headline

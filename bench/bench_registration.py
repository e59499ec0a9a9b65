"""Registration throughput: datasets registered per second, through the client and through the
HTTP API, on the embedded chain and on anvil, against a minimal registry on the same chain.

Paths measured (each run registers ``n`` fresh records, one after another):

* **client**: ``LedgerClient.register_dataset`` with random hashes (simulate, sign, send raw,
  wait: what the service does per write);
* **service in process**: ``service.datasets.register`` of a small unique CSV, what
  the HTTP route calls (validate, hash, store, Merkle root, register, index), without HTTP;
* **HTTP API**: ``POST /v1/datasets`` of the same kind of CSV to a real ``provenance serve``
  process on loopback (the service flow plus HTTP, multipart, auth);
* baseline **web3 transact**: the minimal ``mapping(bytes32=>address)`` registry
  (``bench/_registry.py``) written with web3's ``transact`` and an explicit gas limit from an
  account the node unlocks, then ``wait_for_transaction_receipt``: the method behind the
  reference figures of DESIGN.md and issue 8 (65 tx/s eth-tester, 180 tx/s anvil); the
  target (>= 0.8x) is against this one;
* baseline **raw**: the same registry written with a locally signed raw transaction, tracked
  nonce, fixed fees, explicit gas: the floor of a web3 write, shown so our overhead is visible.

Runs are interleaved (ours, web3, raw, ours, ...) so a noisy neighbour slows all alike; ratios
are taken per interleaved pair and summarised. The embedded service keeps its chain on disk
(``fsync`` per block), so its baselines run on a persistent embedded chain too; on anvil the
service and the baselines share one node.

**Gathered writes** (issue 12), side by side on the embedded chain and on anvil with
``--block-time 1`` (a real chain's cadence): records per second through the HTTP API with 1, 8
and 32 concurrent clients (each sending one request at a time and waiting for its answer), with
one file per request and with ten (``POST /v1/datasets/batch``), then one batch request of
1,000 small files; after each run, the blocks and transactions used and how far the chain's
clock is ahead of the wall clock. The baseline, in the same run and chain: the minimal registry
written with one raw transaction per record (each thread its own key), from as many threads
as there are clients.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import _registry
from bench._common import (
    Chain,
    Config,
    RawSender,
    anvil_available,
    fmt,
    open_chain,
    paired_ratio,
    print_table,
    scratch_dir,
    summarize,
    write_results,
)
from bench._gathered import gathered_headline, gathered_rows
from bench._server import api_server, rpc_service_env, service
from ledger.chain.client import LedgerClient

__all__ = ["run"]

_REGISTER_ABI = [
    {
        "type": "function",
        "name": "register",
        "inputs": [{"name": "id", "type": "bytes32"}],
        "outputs": [],
        "stateMutability": "nonpayable",
    }
]


class _Baselines:
    """The minimal registry on ``chain``, written the two baseline ways."""

    def __init__(self, chain: Chain) -> None:
        self.sender = RawSender(chain.backend, chain.account())
        self.address = self.sender.deploy(_registry.BYTECODE)
        w3 = chain.backend.w3
        self.w3 = w3
        self.contract = w3.eth.contract(address=self.address, abi=_REGISTER_ABI)
        self.unlocked = w3.eth.accounts[0]

    def web3_transact(self) -> None:
        tx_hash = self.contract.functions.register(os.urandom(32)).transact(
            {"from": self.unlocked, "gas": _registry.GAS_LIMIT}
        )
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.01)
        if receipt["status"] != 1:
            raise RuntimeError("baseline write reverted")

    def raw(self) -> None:
        self.sender.send(self.address, _registry.register_data(os.urandom(32)), _registry.GAS_LIMIT)


def _rate(op: Callable[[], Any], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        op()
    return n / (time.perf_counter() - start)


def _client_op(client: LedgerClient) -> Callable[[], Any]:
    def op() -> Any:
        return client.register_dataset(
            os.urandom(32), rows_root=os.urandom(32), row_count=10, schema_hash=os.urandom(32)
        )

    return op


def _csv(rows: int = 10) -> bytes:
    """A small CSV no one has uploaded before."""
    salt = os.urandom(8).hex()
    lines = ["id,label,value"] + [f"{i},{salt},{i * 37 % 101}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def _api_op(http: Any) -> Callable[[], Any]:
    def op() -> Any:
        response = http.post("/v1/datasets", files={"file": ("data.csv", _csv())})
        if response.status_code != 201:
            raise RuntimeError(f"upload answered {response.status_code}: {response.text[:300]}")

    return op


def _interleaved(
    ours: Callable[[], Any], baselines: _Baselines, n: int, runs: int
) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {"ours": [], "web3": [], "raw": []}
    # One untimed warm-up of each path (imports, caches, first-block effects).
    ours(), baselines.web3_transact(), baselines.raw()
    for _ in range(runs):
        rates["ours"].append(_rate(ours, n))
        rates["web3"].append(_rate(baselines.web3_transact, n))
        rates["raw"].append(_rate(baselines.raw, n))
    return rates


def _row(chain: str, path: str, rates: dict[str, list[float]]) -> dict[str, Any]:
    ours, web3, raw = (summarize(rates[k]) for k in ("ours", "web3", "raw"))
    vs_web3, vs_raw = (
        paired_ratio(rates["ours"], rates["web3"]),
        paired_ratio(rates["ours"], rates["raw"]),
    )
    return {
        "chain": chain,
        "path": path,
        "ours": ours,
        "web3_transact": web3,
        "raw": raw,
        "ratio_web3": vs_web3,
        "ratio_raw": vs_raw,
        "cells": [
            chain,
            path,
            f"{fmt(ours['median'])} ({fmt(ours['min'])}-{fmt(ours['max'])})",
            f"{fmt(web3['median'])} ({fmt(web3['min'])}-{fmt(web3['max'])})",
            f"{vs_web3['median']:.2f} ({vs_web3['min']:.2f}-{vs_web3['max']:.2f})",
            f"{fmt(raw['median'])} ({fmt(raw['min'])}-{fmt(raw['max'])})",
            f"{vs_raw['median']:.2f} ({vs_raw['min']:.2f}-{vs_raw['max']:.2f})",
        ],
    }


def _client_rows(config: Config, chains: list[str], work: Path) -> list[dict[str, Any]]:
    n = config.pick(15, 40)
    rows = []
    for name in chains:
        with open_chain(name, work / f"client-{name}") as chain:
            client, _ = LedgerClient.deploy(chain.backend, chain.account())
            rates = _interleaved(_client_op(client), _Baselines(chain), n, config.runs)
            rows.append(_row(name, f"client ({n}/run)", rates))
    return rows


def _service_op(svc: Any) -> Callable[[], Any]:
    def op() -> Any:
        if not svc.datasets.register(io.BytesIO(_csv())).created:
            raise RuntimeError("a fresh CSV was reported as already registered")

    return op


@contextmanager
def _in_process_service(work: Path, env: dict[str, str] | None = None) -> Iterator[Any]:
    """The service in this process (what the HTTP routes call), on the embedded chain
    under ``work`` or, with ``env`` from :func:`rpc_service_env`, on that node."""
    from api.keys import KeyStore
    from api.service import open_service
    from api.settings import Settings

    fields: dict[str, Any] = {"data_dir": work / "data", "anchor_interval": 3600}
    saved = dict(os.environ)
    if env:
        fields.update(chain="rpc", rpc_url=env["PROVENANCE_RPC_URL"],
                      keystore=Path(env["PROVENANCE_KEYSTORE"]))  # fmt: skip
        os.environ["PROVENANCE_KEYSTORE_PASSWORD"] = env["PROVENANCE_KEYSTORE_PASSWORD"]
    try:
        settings = Settings(**fields)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        svc = open_service(settings, KeyStore(settings.data_dir / "keys.sqlite3"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        yield svc
    finally:
        svc.close()


def _api_rows(config: Config, anvil: bool, work: Path) -> list[dict[str, Any]]:
    """The service in process (its flow without HTTP), then through HTTP, on each chain."""
    n = config.pick(6, 20)
    rows = []
    # The embedded service keeps its chain on disk; so does the baseline's chain.
    with open_chain("embedded-disk", work / "api-embedded-baseline") as chain:
        baselines = _Baselines(chain)
        with _in_process_service(work / "svc-embedded") as svc:
            rates = _interleaved(_service_op(svc), baselines, n, config.runs)
            rows.append(_row("embedded-disk", f"service in process ({n}/run)", rates))
        with service(config, work / "api-embedded") as server, server.client() as http:
            rates = _interleaved(_api_op(http), baselines, n, config.runs)
            rows.append(_row("embedded-disk", f"HTTP API ({n}/run)", rates))
    if anvil:
        with open_chain("anvil", work / "api-anvil") as chain:
            baselines = _Baselines(chain)
            env = rpc_service_env(chain.node, work / "svc-anvil")
            with _in_process_service(work / "svc-anvil", env) as svc:
                rates = _interleaved(_service_op(svc), baselines, n, config.runs)
                rows.append(_row("anvil", f"service in process ({n}/run)", rates))
            env = rpc_service_env(chain.node, work / "api-anvil")
            with api_server(work / "api-anvil", env) as server, server.client() as http:
                rates = _interleaved(_api_op(http), baselines, n, config.runs)
                rows.append(_row("anvil", f"HTTP API ({n}/run)", rates))
    return rows


def run(config: Config) -> list[dict[str, Any]]:
    anvil = config.anvil and anvil_available()
    chains = config.pick([], ["embedded"]) + ["embedded-disk"] + (["anvil"] if anvil else [])
    with scratch_dir(config, "registration-") as work:
        rows = _client_rows(config, chains, work) + _api_rows(config, anvil, work)
        gathered = gathered_rows(config, anvil, work)
    table = print_table(
        f"Datasets registered per second, median of {config.runs} interleaved runs (min-max)",
        ["chain", "path", "ours /s", "web3 transact /s", "ours/web3", "raw tx /s", "ours/raw"],
        [r["cells"] for r in rows],
    )
    gathered_table = print_table(
        "Gathered writes through the HTTP API: records per second, one run each",
        [
            "chain",
            "load",
            "records/s",
            "records",
            "blocks holding them / elapsed",
            "txs",
            "clock ahead (s)",
            "registry, 1 raw tx per record (as many threads)",
        ],
        [r["cells"] for r in gathered],
    )
    if not anvil:
        print("anvil rows skipped: anvil not installed (npm ci --prefix contracts)\n")
    figures = [{k: v for k, v in r.items() if k != "cells"} for r in rows]
    gathered_figures = [{k: v for k, v in r.items() if k != "cells"} for r in gathered]
    write_results(
        "registration",
        {"rows": figures, "gathered": gathered_figures, "anvil": anvil},
        [table, gathered_table],
    )
    headline = []
    for r in rows:
        if r["chain"] == "embedded" or "in process" in r["path"]:
            continue  # kept in the table: they locate the overhead, the target is end to end
        ratio = r["ratio_web3"]["median"]
        headline.append(
            {
                "benchmark": "registration",
                "figure": f"{r['path'].split(' (')[0]} on {r['chain']}, datasets/s",
                "measured": fmt(r["ours"]["median"]),
                "baseline": f"registry via web3 {fmt(r['web3_transact']['median'])}/s "
                f"(raw tx {fmt(r['raw']['median'])}/s)",
                "ratio": f"{ratio:.2f} (vs raw {r['ratio_raw']['median']:.2f})",
                "target": ">= 0.8",
                "met": ratio >= 0.8,
            }
        )
    return headline + gathered_headline(gathered, full=not config.quick)

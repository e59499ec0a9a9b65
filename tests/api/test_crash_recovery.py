"""Kill -9 the real server with receipts pending: every receipt it handed out gets anchored.

Several clients predict at once, so receipts of concurrent requests share durable commits
(:mod:`ledger.storage._group_commit`) when the server is killed: each answer still waited for
its own commit, so every receipt a client holds is in the book after the restart.

``provenance serve`` runs in a child process on 127.0.0.1 with a persistent embedded chain in a
temporary data directory. Clients register, clean, train and predict over HTTP, and keep every
receipt they are answered with, while the server is SIGKILLed mid-traffic. Restarted on the same
data directory, the server must still hold the chain (records and earlier batches) and anchor
every receipt a client holds, each of which must then verify ``valid``.

Run 1 keeps receipts pending (huge batch size and interval); run 2 anchors in batches of 3 while
requests stream in, so the kill lands during anchoring; run 3 flushes with ``POST /v1/anchor``.

The same holds for gathered writes, on the embedded chain and on anvil with ``--block-time 1``:
clients upload batches while the server is killed, with writes queued, being sent and waiting
for their block; after the restart every record a client was answered for is on chain as
answered, every file sent again is answered as registered, and the service key's transactions
all succeeded at consecutive nonces (nothing was sent twice).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.devserver import ServiceProcess

TIMEOUT = 90.0  # seconds; only ever reached when something is broken
RAW_CSV = "x1,x2,y\n100,200,5000\n200,300,6000\n300,400,7000\n300,400,7000\n250,,6500\n"


@contextmanager
def serve(data_dir: Path, **settings: str) -> Iterator[ServiceProcess]:
    """Start ``provenance serve`` on a free loopback port; always stopped on the way out."""
    env = {f"PROVENANCE_{k.upper()}": v for k, v in settings.items()}
    with ServiceProcess(data_dir, env=env, start_timeout=TIMEOUT) as server:
        yield server


def kill(server: ServiceProcess) -> None:
    """SIGKILL: no shutdown hook, no flush, nothing."""
    assert server.stop(kill=True) == -signal.SIGKILL


def _ok(response: httpx.Response, *statuses: int) -> Any:
    assert response.status_code in (statuses or (200,)), response.text
    return response.json()


def _wait_until(
    condition: Callable[[], bool], what: str, server: ServiceProcess, *, every: float = 0.1
) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}:\n{server.log_tail()}")
        time.sleep(every)


@dataclass
class Traffic:
    """Predictions sent in a loop from several client threads at once (so that the service
    groups their receipts' durable writes); keeps every receipt it was answered."""

    server: ServiceProcess
    data_dir: Path
    model: str
    clients: int = 3
    held: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._run, args=(k,), daemon=True) for k in range(self.clients)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, k: int) -> None:
        with self.server.client(timeout=60) as client:
            for i in range(10_000):
                rows = [{"x1": i, "x2": 2 * i + k}, {"x1": i + 0.5, "x2": k}]
                try:
                    response = client.post(f"/v1/models/{self.model}/predict", json={"rows": rows})
                except httpx.TransportError:
                    return  # the server is gone: this answer never reached us
                if response.status_code != 200:
                    self.errors.append(response.text)
                    return
                with self._lock:
                    self.held.extend(response.json()["receipts"])

    def count(self) -> int:
        with self._lock:
            return len(self.held)

    def join(self) -> list[dict[str, Any]]:
        assert self._threads
        for thread in self._threads:
            thread.join(timeout=TIMEOUT)
            assert not thread.is_alive()
        assert self.errors == []
        return list(self.held)


def _kill_mid_traffic(
    server: ServiceProcess, data_dir: Path, model: str, at_least: int
) -> list[dict]:
    traffic = Traffic(server, data_dir, model)
    traffic.start()
    _wait_until(
        lambda: traffic.count() >= at_least,
        f"{at_least} receipts are handed out",
        server,
        every=0.005,
    )
    kill(server)  # while predictions are still streaming in
    held = traffic.join()
    assert len(held) >= at_least
    assert len({r["receipt_id"] for r in held}) == len(held)
    assert all(r["status"] == "pending" for r in held)
    return held


def _status(client: httpx.Client, receipt: dict[str, Any]) -> str:
    return _ok(client.get(f"/v1/receipts/{receipt['receipt_id']}"))["status"]


def _assert_all_valid(client: httpx.Client, held: list[dict[str, Any]]) -> None:
    """Each receipt, exactly as the client was handed it, verifies valid."""
    for receipt in held:
        report = _ok(client.post("/v1/verify/receipt", json={"receipt": receipt}))
        assert report["verdict"] == "valid", report


@pytest.mark.slow
def test_sigkill_with_receipts_pending_loses_none(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    quiet = {"anchor_interval": "3600", "anchor_batch_size": "100000"}

    # Run 1: the pipeline, one anchored batch, then receipts left pending when killed.
    with serve(data_dir, **quiet) as server:
        with server.client(timeout=60) as client:
            raw = _ok(client.post("/v1/datasets", files={"file": ("sales.csv", RAW_CSV)}), 201)[
                "content_hash"
            ]
            steps = [{"step": "drop_duplicates"}, {"step": "drop_missing"}]
            clean = _ok(client.post(f"/v1/datasets/{raw}/derive", json={"steps": steps}), 201)[
                "content_hash"
            ]
            body = {"dataset": clean, "algorithm": "linear_regression", "target": "y"}
            model = _ok(client.post("/v1/models", json={**body, "test_size": 0}), 201)["model_hash"]
            early = _ok(
                client.post(f"/v1/models/{model}/predict", json={"rows": [{"x1": 1, "x2": 2}]})
            )["receipts"]
            _ok(client.post("/v1/anchor"))
            assert _status(client, early[0]) == "anchored"
            block_before = _ok(client.get("/v1/chain"))["latest_block"]
        first = _kill_mid_traffic(server, data_dir, model, at_least=10)

    # Run 2: it comes back with its chain; the age trigger anchors what was pending, while new
    # traffic is anchored in batches of 3 until the next kill.
    with serve(data_dir, anchor_interval="0.5", anchor_batch_size="3") as server:
        with server.client(timeout=60) as client:
            assert _ok(client.get("/v1/chain"))["latest_block"] >= block_before
            assert _ok(client.get(f"/v1/models/{model}"))["datasets"] == [clean]
            _wait_until(
                lambda: all(_status(client, r) == "anchored" for r in first),
                "every receipt held after the first kill is anchored",
                server,
            )
            _assert_all_valid(client, first)
        second = _kill_mid_traffic(server, data_dir, model, at_least=10)

    # Run 3: nothing is due by size or age; POST /v1/anchor flushes what the kill left behind.
    with serve(data_dir, **quiet) as server, server.client(timeout=60) as client:
        flushed = _ok(client.post("/v1/anchor"))
        assert all(b["error"] is None for b in flushed["batches"]), flushed
        assert flushed["receipts"]["pending"] == 0
        assert flushed["receipts"]["failed"] == 0
        held = early + first + second
        assert all(_status(client, r) == "anchored" for r in held)
        _assert_all_valid(client, early + second)  # `first` was verified in run 2
        # No batch was anchored twice: each anchored batch holds distinct receipts.
        docs = [_ok(client.get(f"/v1/receipts/{r['receipt_id']}")) for r in held]
        assert len({(d["batch_id"], d["leaf"]) for d in docs}) == len(held)


# -- gathered writes ----------------------------------------------------------------------------


@dataclass
class Uploads:
    """Clients sending batches of fresh files in a loop; keeps every file sent and every record
    acknowledged (answered 201 or 200), until the server goes away."""

    server: ServiceProcess
    clients: int = 4
    per_request: int = 5
    sent: list[bytes] = field(default_factory=list)
    acknowledged: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for position in range(self.clients):
            thread = threading.Thread(target=self._run, args=(position,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self, position: int) -> None:
        with self.server.client(timeout=60) as client:
            for round_ in range(10_000):
                files = [
                    f"client,round,n\n{position},{round_},{n}\n".encode()
                    for n in range(self.per_request)
                ]
                with self._lock:
                    self.sent += files
                parts = [("file", (f"{position}-{round_}-{n}.csv", f)) for n, f in enumerate(files)]
                try:
                    response = client.post("/v1/datasets/batch", files=parts)
                except httpx.TransportError:
                    return  # the server is gone: this answer never reached us
                if response.status_code != 200:
                    self.errors.append(response.text)
                    return
                with self._lock:
                    for entry in response.json()["data"]:
                        if entry["status"] not in (200, 201):
                            self.errors.append(json.dumps(entry))
                        self.acknowledged[entry["content_hash"]] = entry

    def count(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=TIMEOUT)
            assert not thread.is_alive()
        assert self.errors == []


def _journaled(data_dir: Path) -> int:
    """Transactions the write pipeline's journal holds (sent, not yet mined)."""
    path = data_dir / "writes.sqlite3"
    if not path.exists():
        return 0
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM sent").fetchone()[0]
        except sqlite3.OperationalError:  # the table is being created
            return 0


def _rpc(client: httpx.Client, method: str, *params: Any) -> Any:
    answer = _ok(
        client.post("/rpc", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    )
    assert "error" not in answer, answer
    return answer["result"]


@pytest.fixture(params=["embedded", pytest.param("anvil-1s", marks=pytest.mark.anvil)])
def chain_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The service's settings for each chain: none for the embedded one; for anvil with
    ``--block-time 1``, a keystore holding a funded key and a deployment, as
    `provenance deploy` leaves them."""
    if request.param == "embedded":
        return {}
    return rpc_service_env(request.getfixturevalue("anvil_paced_node"), tmp_path)


def rpc_service_env(node: Any, folder: Path) -> dict[str, str]:
    """Settings for a service on anvil ``node``, as `provenance deploy` leaves a data directory
    (``folder/data``): a keystore holding a funded key, and the deployment."""
    from ledger.chain.backends.rpc import RpcBackend
    from ledger.chain.deployment import deploy_ledger
    from ledger.chain.keys import create_keystore

    keystore, password = folder / "key.json", "test keystore password"
    account = create_keystore(keystore, password)
    node.set_balance(account.address, 10**21)
    (folder / "data").mkdir()
    deploy_ledger(RpcBackend(node.url), account, folder / "data" / "deployment.json")
    return {
        "chain": "rpc",
        "rpc_url": node.url,
        "keystore": str(keystore),
        "keystore_password": password,
    }


@pytest.mark.slow
def test_sigkill_during_gathered_batches_loses_no_acknowledged_record_and_sends_nothing_twice(
    tmp_path: Path, chain_env: dict[str, str]
) -> None:
    data_dir = tmp_path / "data"
    with serve(data_dir, **chain_env) as server:
        with server.client(timeout=60) as client:
            registrar = _ok(client.get("/v1/chain"))["registrar"]
            first_block = _ok(client.get("/v1/chain"))["latest_block"] + 1
        uploads = Uploads(server)
        uploads.start()
        _wait_until(lambda: uploads.count() >= 40, "40 records are acknowledged", server)
        if chain_env:  # on a node: kill it while the journal holds transactions in its pool
            _wait_until(lambda: _journaled(data_dir) > 0, "a batch is in the pool", server)
        kill(server)  # with batches queued, being sent and waiting for their block
        uploads.join()

    with serve(data_dir, **chain_env) as server, server.client(timeout=60) as client:
        # every record a client was answered for is there, exactly as it was answered
        for content_hash, entry in uploads.acknowledged.items():
            record = _ok(client.get(f"/v1/datasets/{content_hash}"))
            assert (record["tx_hash"], record["block_number"]) == (
                entry["tx_hash"],
                entry["block_number"],
            )
        # every file sent, answered or not, sent again: the acknowledged ones are known
        for start in range(0, len(uploads.sent), 50):
            files = uploads.sent[start : start + 50]
            parts = [("file", (f"{start + n}.csv", f)) for n, f in enumerate(files)]
            for entry in _ok(client.post("/v1/datasets/batch", files=parts))["data"]:
                assert entry["status"] in (200, 201), entry
                if entry["content_hash"] in uploads.acknowledged:
                    assert entry["status"] == 200
        assert _ok(client.get("/v1/datasets?limit=1"))["count"] == len(set(uploads.sent))
        # nothing was sent twice: every transaction of the service key went through, at
        # consecutive nonces (a duplicate would have reverted on chain)
        head = int(_rpc(client, "eth_blockNumber"), 16)
        nonces = []
        for number in range(first_block, head + 1):
            block = _rpc(client, "eth_getBlockByNumber", hex(number), True)
            for tx in block["transactions"]:
                if tx["from"].lower() == registrar.lower():
                    receipt = _rpc(client, "eth_getTransactionReceipt", tx["hash"])
                    assert int(receipt["status"], 16) == 1, tx["hash"]
                    nonces.append(int(tx["nonce"], 16))
        assert nonces == list(range(nonces[0], nonces[0] + len(nonces)))

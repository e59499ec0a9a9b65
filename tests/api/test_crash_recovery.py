"""Kill -9 the real server with receipts pending: every receipt it handed out gets anchored.

``provenance serve`` runs in a child process on 127.0.0.1 with a persistent embedded chain in a
temporary data directory. Clients register, clean, train and predict over HTTP, and keep every
receipt they are answered with, while the server is SIGKILLed mid-traffic. Restarted on the same
data directory, the server must still hold the chain (records and earlier batches) and anchor
every receipt a client holds, each of which must then verify ``valid``.

Run 1 keeps receipts pending (huge batch size and interval); run 2 anchors in batches of 3 while
requests stream in, so the kill lands during anchoring; run 3 flushes with ``POST /v1/anchor``.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    """Predictions sent in a loop from another thread; keeps every receipt it was answered."""

    server: ServiceProcess
    data_dir: Path
    model: str
    held: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self.server.client(timeout=60) as client:
            for i in range(10_000):
                rows = [{"x1": i, "x2": 2 * i}, {"x1": i + 0.5, "x2": 1}]
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
        assert self._thread is not None
        self._thread.join(timeout=TIMEOUT)
        assert not self._thread.is_alive()
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

"""OpenLineage over HTTP (the transport a Marquez server takes), and a lineage server that is
away never delays or fails a write."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from api.settings import Settings
from ledger.chain.devnode import AnvilNode, anvil_binary, free_port
from tests.api.conftest import authorized_client, train, upload
from tests.api.test_crash_recovery import rpc_service_env


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback HTTP server that keeps every OpenLineage event POSTed to it."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == "/api/v1/lineage":
                received.append(json.loads(body))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def _derive_and_train(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", anchor_interval=3600)
    with authorized_client(settings) as client:
        raw = upload(client, "x1,x2,y\n1,2,3\n2,3,5\n3,4,8\n3,4,8\n").json()["content_hash"]
        steps = {"steps": [{"step": "drop_duplicates"}]}
        clean = client.post(f"/v1/datasets/{raw}/derive", json=steps)
        assert clean.status_code == 201, clean.text
        model = train(client, clean.json()["content_hash"])
        assert model.status_code == 201, model.text


def test_events_reach_a_lineage_server_over_http(
    receiver: tuple[str, list[dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, received = receiver
    monkeypatch.setenv("OPENLINEAGE_URL", url)
    monkeypatch.delenv("OPENLINEAGE_CONFIG", raising=False)
    _derive_and_train(tmp_path)
    deadline = time.monotonic() + 20
    while len(received) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(e["job"]["name"] for e in received) == ["derive", "train"]
    assert all(e["eventType"] == "COMPLETE" for e in received)


def test_a_lineage_server_that_is_away_fails_no_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENLINEAGE_URL", f"http://127.0.0.1:{free_port()}")  # nobody listens
    monkeypatch.delenv("OPENLINEAGE_CONFIG", raising=False)
    _derive_and_train(tmp_path)  # every write answered 201


def test_without_openlineage_variables_nothing_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENLINEAGE_URL", raising=False)
    monkeypatch.delenv("OPENLINEAGE_CONFIG", raising=False)
    settings = Settings(data_dir=tmp_path / "data")
    with authorized_client(settings) as client:
        assert client.app.state.service.core.events._client is None  # type: ignore[attr-defined]


@pytest.mark.anvil
@pytest.mark.skipif(anvil_binary() is None, reason="anvil not installed")
def test_writes_answered_on_acceptance_are_told_once_on_chain(
    receiver: tuple[str, list[dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, received = receiver
    monkeypatch.setenv("OPENLINEAGE_URL", url)
    monkeypatch.delenv("OPENLINEAGE_CONFIG", raising=False)
    with AnvilNode(tmp_path / "anvil") as node:
        for name, value in rpc_service_env(node, tmp_path).items():
            monkeypatch.setenv(f"PROVENANCE_{name.upper()}", value)
        settings = Settings(data_dir=tmp_path / "data", anchor_interval=3600)
        with authorized_client(settings) as client:
            raw = upload(client, "x1,x2,y\n1,2,3\n2,3,5\n3,4,8\n3,4,8\n").json()["content_hash"]
            steps = {"steps": [{"step": "drop_duplicates"}]}
            derived = client.post(f"/v1/datasets/{raw}/derive?wait=accepted", json=steps)
            assert derived.status_code == 202, derived.text
            clean = derived.json()["content_hash"]
            _wait(lambda: client.get(f"/v1/datasets/{clean}").status_code == 200)
            body = {"dataset": clean, "algorithm": "linear_regression", "target": "y",
                    "test_size": 0}  # fmt: skip
            model = client.post("/v1/models?wait=accepted", json=body)
            assert model.status_code == 202, model.text
            _wait(lambda: len(received) >= 2)
    by_job = {e["job"]["name"]: e for e in received}
    assert sorted(by_job) == ["derive", "train"] and len(received) == 2
    assert [o["name"] for o in by_job["derive"]["outputs"]] == [clean]
    assert [i["name"] for i in by_job["derive"]["inputs"]] == [raw]
    assert [o["name"] for o in by_job["train"]["outputs"]] == [model.json()["model_hash"]]
    facet = by_job["train"]["run"]["facets"]["provenanceLedger"]
    assert facet["transaction"].startswith("0x") and facet["block"] > 0


def _wait(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)

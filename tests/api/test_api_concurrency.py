"""The same write arriving several times at once: exactly one transaction, one 201 (or one
revocation), and every other request answered from the record that one created; different
writes arriving at once: gathered into few transactions, a bad one refused alone.

Each request waits at a barrier on entering the service, so they all start the write together;
a duplicate that slips past the index check would send a transaction that reverts on chain
(and still costs gas), which the chain's head shows.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import SALES_CSV, assert_problem, train, upload

N = 6


def head(client: TestClient) -> int:
    return client.get("/v1/chain").json()["latest_block"]


def all_at_once(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, method: str, request: Callable[[], Any]
) -> list[Any]:
    """Send ``request`` N times in parallel, all released together inside ``service.<part>.<fn>``
    (``method`` names both, e.g. ``"datasets.register"``)."""
    part_name, _, name = method.partition(".")
    part = getattr(client.app.state.service, part_name)  # type: ignore[attr-defined]
    original = getattr(part, name)
    barrier = threading.Barrier(N, timeout=60)  # the timeout only guards against a hang

    def together(*args: Any, **kwargs: Any) -> Any:
        barrier.wait()
        return original(*args, **kwargs)

    monkeypatch.setattr(part, name, together)
    with ThreadPoolExecutor(N) as pool:
        responses = list(pool.map(lambda _: request(), range(N)))
    monkeypatch.undo()
    return responses


def test_simultaneous_uploads_of_one_file(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = head(client)
    responses = all_at_once(client, monkeypatch, "datasets.register", lambda: upload(client))
    assert Counter(r.status_code for r in responses) == {201: 1, 200: N - 1}
    assert len({r.text for r in responses}) == 1
    assert head(client) == block + 1
    assert client.get("/v1/datasets").json()["count"] == 1


def test_simultaneous_derivations(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    parent = upload(client).json()["content_hash"]
    steps = {"steps": [{"step": "filter_rows", "column": "x1", "op": ">", "value": 100}]}
    block = head(client)
    responses = all_at_once(
        client,
        monkeypatch,
        "datasets.derive",
        lambda: client.post(f"/v1/datasets/{parent}/derive", json=steps),
    )
    assert Counter(r.status_code for r in responses) == {201: 1, 200: N - 1}
    assert {r.json()["parents"][0] for r in responses} == {parent}
    assert head(client) == block + 1


def test_simultaneous_identical_trainings(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = upload(client, SALES_CSV).json()["content_hash"]
    block = head(client)
    responses = all_at_once(client, monkeypatch, "models.train", lambda: train(client, dataset))
    assert Counter(r.status_code for r in responses) == {201: 1, 200: N - 1}
    assert len({r.json()["model_hash"] for r in responses}) == 1
    assert head(client) == block + 1


def test_simultaneous_revocations(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = upload(client, SALES_CSV).json()["content_hash"]
    block = head(client)
    responses = all_at_once(
        client,
        monkeypatch,
        "records.revoke",
        lambda: client.post(f"/v1/records/{dataset}/revoke", json={"reason": "twice"}),
    )
    assert Counter(r.status_code for r in responses) == {200: 1, 409: N - 1}
    for refused in (r for r in responses if r.status_code == 409):
        assert_problem(refused, 409, "already-revoked")
    assert head(client) == block + 1


def test_concurrent_uploads_of_different_files_are_gathered_and_a_bad_one_fails_alone(
    client: TestClient,
) -> None:
    """Uploads that arrive while a write is in flight go out together: here the chain is held
    while they queue, so the first is sent alone and the others in one transaction behind it.
    The malformed upload among them is refused on its own, before anything is sent for it."""
    service = client.app.state.service  # type: ignore[attr-defined]
    writes, lock = service.core.writes, service.core.backend.lock
    block = head(client)
    files = [f"x,y\n{n},{n + 1}\n".encode() for n in range(N)]
    files.insert(2, b"x,y\n1\n")  # ragged
    with ThreadPoolExecutor(len(files)) as pool:
        with lock:
            first = pool.submit(upload, client, files[0])
            deadline = time.monotonic() + 60
            while writes.waiting < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            rest = [pool.submit(upload, client, f) for f in files[1:]]
            while writes.waiting < N and time.monotonic() < deadline:
                time.sleep(0.01)
        responses = [first.result(), *(r.result() for r in rest)]
    assert [r.status_code for r in responses] == [201, 201, 422, *[201] * (N - 2)]
    assert_problem(responses[2], 422, "ragged-row")
    created = [r.json() for r in responses if r.status_code == 201]
    assert len({c["tx_hash"] for c in created[1:]}) == 1 != len({c["tx_hash"] for c in created})
    assert head(client) == block + 2
    assert client.get("/v1/datasets").json()["count"] == N

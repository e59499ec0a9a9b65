"""Expensive work in a bounded pool (``api/jobs.py``): never anonymous, a fixed number at once,
429 with ``Retry-After`` past the bound, and jobs to poll with their progress.

The verify routes that retrain, re-run and verify in bulk belong to another module; these tests
put the pool behind routes of their own, mounted on the real app behind the real gate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import AuditorAccess, ReadAccess, WorkDep
from api.jobs import Job
from api.settings import Settings
from ledger.errors import UnknownRecord
from tests.api.conftest import admin_key, assert_problem

ANONYMOUS = {"Authorization": ""}
WAIT = 60  # a guard so that a regression fails instead of hanging


class Gates:
    """Events the test opens to let the work of its routes go on, step by step."""

    def __init__(self) -> None:
        self.events = [threading.Event() for _ in range(4)]

    def open_all(self) -> None:
        for event in self.events:
            event.set()


@pytest.fixture
def gates() -> Iterator[Gates]:
    made = Gates()
    yield made
    made.open_all()  # never leave a pool thread waiting


def make_client(settings: Settings, gates: Gates) -> TestClient:
    app = create_app(settings)

    @app.get("/v1/test/expensive")
    def expensive(key: ReadAccess, work: WorkDep) -> dict[str, Any]:
        """A read route that asks for expensive work, as ``?retrain=true`` does."""
        return work.run("test", key, lambda job: gates.events[0].wait(WAIT) and {"ok": True})

    @app.post("/v1/test/bulk", status_code=202)
    def bulk(key: AuditorAccess, work: WorkDep, fail: bool = False) -> dict[str, Any]:
        def steps(job: Job) -> dict[str, int]:
            for done, gate in enumerate(gates.events[1:], start=1):
                gate.wait(WAIT)
                if fail:
                    raise UnknownRecord("no receipt 0x12 was issued here")
                job.progress(done, total=3)
            return {"verified": 3}

        return work.submit("bulk", key, steps).view()

    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def client(tmp_path, gates) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path / "data", anchor_interval=3600, expensive_workers=1, expensive_queue=0
    )
    with make_client(settings, gates) as test_client:
        test_client.headers["Authorization"] = f"Bearer {admin_key(settings.data_dir)}"
        yield test_client


def key_of(client: TestClient, role: str) -> dict[str, str]:
    key = client.post("/v1/admin/keys", json={"role": role, "name": role}).json()["key"]
    return {"Authorization": f"Bearer {key}"}


def until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.01)


def test_expensive_work_needs_an_auditor_key_even_while_reads_are_public(client, gates):
    assert client.get("/v1/datasets", headers=ANONYMOUS).status_code == 200  # reads are open
    refused = client.get("/v1/test/expensive", headers=ANONYMOUS)
    assert_problem(refused, 401, "unauthorized")
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert_problem(client.post("/v1/test/bulk", headers=ANONYMOUS), 401, "unauthorized")
    assert client.app.state.work.admitted == 0  # refused before anything was queued
    gates.open_all()
    assert client.get("/v1/test/expensive", headers=key_of(client, "auditor")).json() == {
        "ok": True
    }


def test_past_its_bound_the_pool_answers_429_with_retry_after(client, gates):
    work = client.app.state.work
    first: list[Any] = []
    holder = threading.Thread(target=lambda: first.append(client.get("/v1/test/expensive")))
    holder.start()
    until(lambda: work.admitted == 1, "admitted")

    refused = client.get("/v1/test/expensive")
    body = assert_problem(refused, 429, "too-many-requests")
    assert body["limit"] == "expensive_queue"
    assert int(refused.headers["retry-after"]) >= 1
    assert_problem(client.get("/v1/admin/fsck"), 429, "too-many-requests")  # fsck shares it

    gates.events[0].set()
    holder.join(WAIT)
    assert first[0].json() == {"ok": True}
    assert client.get("/v1/admin/fsck").json()["ok"] is True  # a place is free again


def test_a_job_reports_its_progress_then_its_result_to_its_owner_only(client, gates):
    auditor = key_of(client, "auditor")
    started = client.post("/v1/test/bulk", headers=auditor)
    assert started.status_code == 202
    job_id = started.json()["id"]
    path = f"/v1/jobs/{job_id}"
    for done, gate in enumerate(gates.events[1:], start=1):
        gate.set()
        until(lambda d=done: client.get(path, headers=auditor).json()["progress"]["done"] == d,
              f"at {done}")  # fmt: skip
    until(lambda: client.get(path, headers=auditor).json()["state"] == "done", "done")
    finished = client.get(path, headers=auditor).json()
    assert finished["result"] == {"verified": 3}
    assert finished["progress"] == {"done": 3, "total": 3}
    assert finished["problem"] is None and finished["finished_at"] >= finished["created_at"]

    assert client.get(path).status_code == 200  # an admin sees every job
    other = key_of(client, "auditor")
    assert_problem(client.get(path, headers=other), 404, "unknown-job")  # as if unknown
    assert_problem(client.get(path, headers=ANONYMOUS), 401, "unauthorized")
    assert_problem(client.get("/v1/jobs/not-a-job"), 422, "invalid-request")


def test_a_failed_job_carries_the_problem_its_request_would_have_answered(client, gates):
    job_id = client.post("/v1/test/bulk?fail=true").json()["id"]
    gates.open_all()
    until(lambda: client.get(f"/v1/jobs/{job_id}").json()["state"] == "failed", "failed")
    failed = client.get(f"/v1/jobs/{job_id}").json()
    assert failed["problem"] == {
        "type": "urn:provenance-ledger:problem:unknown-record",
        "status": 404,
        "detail": "no receipt 0x12 was issued here",
    }
    assert failed["result"] is None

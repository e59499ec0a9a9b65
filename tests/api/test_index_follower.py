"""The index follower: a failing sync is logged once with its traceback (not a line a second),
and while the index cannot follow the chain the service's reads do not answer around it."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger.errors import ChainUnavailable
from ledger.index.base import IndexMismatch


def _wait(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_failing_sync_is_logged_once_and_reads_sync_again(
    client: TestClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = client.app.state.service.core  # type: ignore[attr-defined]
    real_sync = core.sync
    rounds: list[str] = []

    def broken() -> int:
        rounds.append("mismatch")
        raise IndexMismatch("the index file follows another chain")

    caplog.set_level(logging.WARNING, logger="provenance.service")
    monkeypatch.setattr(core, "sync", broken)
    follower = threading.Thread(target=core._follow_chain, kwargs={"every": 0.001})
    follower.start()
    try:
        _wait(lambda: len(rounds) >= 4)
        with pytest.raises(IndexMismatch):  # a read re-tries the sync, and says why it failed
            core.catch_up()
        failures = [r for r in caplog.records if "index sync failed" in r.getMessage()]
        assert len(failures) == 1 and failures[0].exc_info is not None
        assert failures[0].exc_info[0] is IndexMismatch

        monkeypatch.setattr(core, "sync", real_sync)
        _wait(lambda: any("recovered" in r.getMessage() for r in caplog.records))
        core.catch_up()  # the index follows the chain again: reads answer
    finally:
        core._stop.set()
        follower.join(timeout=30)


def test_with_the_chain_away_reads_answer_from_the_index(
    client: TestClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = client.app.state.service.core  # type: ignore[attr-defined]
    rounds: list[str] = []

    def away() -> int:
        rounds.append("away")
        raise ChainUnavailable("the node is away")

    caplog.set_level(logging.WARNING, logger="provenance.service")
    monkeypatch.setattr(core, "sync", away)
    follower = threading.Thread(target=core._follow_chain, kwargs={"every": 0.001})
    follower.start()
    try:
        _wait(lambda: len(rounds) >= 4)
        core.catch_up()  # the index is a cache of the chain: it answers as it stands
        assert len([r for r in caplog.records if "chain is away" in r.getMessage()]) == 1
    finally:
        core._stop.set()
        follower.join(timeout=30)

"""The index follower: a failing sync is logged once with its traceback (not a line a second),
and while the index cannot follow the chain the service's reads do not answer around it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger.errors import ChainUnavailable, LedgerError
from ledger.index.base import IndexMismatch


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@contextmanager
def following(core: Any, monkeypatch: pytest.MonkeyPatch, error: LedgerError) -> Iterator[None]:
    """A follower that polls fast, over a sync that raises ``error``; yields after four
    failed rounds."""
    rounds: list[None] = []

    def failing() -> int:
        rounds.append(None)
        raise error

    monkeypatch.setattr(core, "sync", failing)
    follower = threading.Thread(target=core._follow_chain, kwargs={"every": 0.001})
    follower.start()
    try:
        _wait(lambda: len(rounds) >= 4)
        yield
    finally:
        core._stop.set()
        follower.join(timeout=30)


def _messages(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


def test_a_failing_sync_is_logged_once_and_reads_sync_again(
    client: TestClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = client.app.state.service.core  # type: ignore[attr-defined]
    real_sync = core.sync
    caplog.set_level(logging.WARNING, logger="provenance.service")
    with following(core, monkeypatch, IndexMismatch("the index file follows another chain")):
        with pytest.raises(IndexMismatch):  # a read re-tries the sync, and says why it failed
            core.catch_up()
        failures = _messages(caplog, "index sync failed")
        assert len(failures) == 1 and failures[0].exc_info is not None
        assert failures[0].exc_info[0] is IndexMismatch

        monkeypatch.setattr(core, "sync", real_sync)
        _wait(lambda: bool(_messages(caplog, "recovered")))
        core.catch_up()  # the index follows the chain again: reads answer


def test_with_the_chain_away_reads_answer_from_the_index(
    client: TestClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = client.app.state.service.core  # type: ignore[attr-defined]
    caplog.set_level(logging.WARNING, logger="provenance.service")
    with following(core, monkeypatch, ChainUnavailable("the node is away")):
        core.catch_up()  # the index is a cache of the chain: it answers as it stands
        assert len(_messages(caplog, "chain is away")) == 1

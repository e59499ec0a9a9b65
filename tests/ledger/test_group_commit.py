"""Group commit: concurrent callers share commits, and none returns before its own is done.

The write function here records what each commit held; a slow one makes callers pile up, as
requests do behind an fsync. Then the same through the receipt book, on SQLite.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from ledger.formats.receipt_signing import ReceiptSigner
from ledger.formats.receipts import ReceiptDomain
from ledger.storage._group_commit import GroupCommit
from ledger.storage.receipt_book import ReceiptBook

CALLERS = 12


class _Disk:
    """A write that takes a while, fails for a poisoned item, and remembers every commit."""

    def __init__(self, delay: float = 0.02) -> None:
        self.delay = delay
        self.commits: list[list[str]] = []
        self.durable: set[str] = set()
        self.lock = threading.Lock()

    def write(self, items: Sequence[str]) -> None:
        time.sleep(self.delay)
        if any(item.startswith("poison") for item in items):
            raise OSError("disk refused the poisoned item")
        with self.lock:
            self.commits.append(list(items))
            self.durable.update(items)


def _run_callers(group: GroupCommit[str], disk: _Disk, batches: list[list[str]]) -> list[object]:
    outcomes: list[object] = [None] * len(batches)
    start = threading.Barrier(len(batches))

    def caller(k: int) -> None:
        start.wait()
        try:
            group.submit(batches[k])
        except OSError as exc:
            outcomes[k] = exc
            return
        # returned: every one of its items is in a finished commit
        with disk.lock:
            outcomes[k] = set(batches[k]) <= disk.durable

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


def test_concurrent_callers_share_commits_and_each_waits_for_its_own() -> None:
    disk = _Disk()
    group: GroupCommit[str] = GroupCommit(disk.write)
    batches = [[f"{k}-a", f"{k}-b"] for k in range(CALLERS)]
    assert _run_callers(group, disk, batches) == [True] * CALLERS
    assert disk.durable == {item for batch in batches for item in batch}
    assert len(disk.commits) == group.commits < CALLERS  # grouped
    # a caller's items are never split across commits
    for batch in batches:
        assert sum(set(batch) <= set(commit) for commit in disk.commits) == 1


def test_a_failing_caller_fails_alone() -> None:
    disk = _Disk()
    group: GroupCommit[str] = GroupCommit(disk.write)
    batches = [[f"{k}-a"] for k in range(CALLERS)]
    batches[3] = ["poison-3", "3-a"]
    outcomes = _run_callers(group, disk, batches)
    assert isinstance(outcomes[3], OSError)
    assert outcomes[:3] + outcomes[4:] == [True] * (CALLERS - 1)
    assert "3-a" not in disk.durable  # all or none for the failing caller


def test_a_lone_caller_commits_at_once() -> None:
    disk = _Disk(delay=0)
    group: GroupCommit[str] = GroupCommit(disk.write)
    group.submit(["x"])
    group.submit(["y", "z"])
    assert disk.commits == [["x"], ["y", "z"]]
    with pytest.raises(OSError):
        group.submit(["poison"])
    group.submit(["after"])  # a failure leaves the group usable
    assert disk.commits[-1] == ["after"]


def test_the_receipt_book_groups_concurrent_requests(tmp_path: Path) -> None:
    book = ReceiptBook(tmp_path / "receipts.sqlite3")
    signer = ReceiptSigner(b"\x07" * 32, ReceiptDomain(1, "0x" + "11" * 20))
    requests = [
        signer.sign_request(
            model_hash=b"\x01" * 32, input_hashes=[bytes([k]) * 32] * 5, outputs=[float(k)] * 5
        ).issued(['{"x":1}'] * 5)
        for k in range(CALLERS)
    ]
    start = threading.Barrier(CALLERS)
    seen: list[bool] = [False] * CALLERS

    def request(k: int) -> None:
        start.wait()
        book.add_issued(requests[k])
        # answered: a second connection (another process, after a crash) finds them all
        other = ReceiptBook(book.path)
        seen[k] = all(other.get(item.receipt_id) is not None for item in requests[k])
        other.close()

    threads = [threading.Thread(target=request, args=(k,)) for k in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert seen == [True] * CALLERS
    assert book.counts()["pending"] == 5 * CALLERS
    assert book._commits.commits <= CALLERS
    book.close()

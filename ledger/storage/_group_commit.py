"""Group commit: the durable writes of concurrent callers in one transaction, each caller
returning only once its own items are on disk.

Why: a durable commit costs an fsync, whatever it holds, and the prediction path writes one
request's receipts per commit. With several requests in flight, a commit per request spends the
disk's time on fsyncs; grouping them gives one fsync per group, and no caller returns before
the commit that holds its items.

How (leader and followers, no thread of its own): a caller queues its items; if no commit is
running it leads: it takes everything queued, writes it in one transaction and wakes every
caller of the group, then hands the lead to the first caller queued meanwhile. A group whose
commit fails is written again one caller at a time, so a failure reaches only the callers whose
own items fail, each with its own error, and nothing of theirs is left half written (each write
is one transaction).

Crash: a caller returns only after its commit returned, so anything a caller acknowledged is on
disk; a crash during a commit loses only items whose callers had not returned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")


class _Ticket(Generic[T]):
    __slots__ = ("error", "event", "finished", "items", "lead")

    def __init__(self, items: Sequence[T]) -> None:
        self.items = items
        self.event = threading.Event()
        self.lead = False
        self.finished = False
        self.error: BaseException | None = None


class GroupCommit(Generic[T]):
    """Calls ``write(items)`` (one durable transaction, all or none) for groups of callers."""

    def __init__(self, write: Callable[[Sequence[T]], None]) -> None:
        self._write = write
        self._lock = threading.Lock()
        self._queue: list[_Ticket[T]] = []
        self._busy = False
        self.commits = 0
        """How many transactions were committed (for tests and figures)."""

    def submit(self, items: Sequence[T]) -> None:
        """Write ``items`` durably (in a group with concurrent callers); return once they are
        committed, or raise the error that kept them from it."""
        ticket = _Ticket(items)
        with self._lock:
            self._queue.append(ticket)
            if not self._busy:
                self._busy = ticket.lead = True
        while not ticket.finished:
            if ticket.lead:
                self._lead()
            else:
                ticket.event.wait()
                ticket.event.clear()
        if ticket.error is not None:
            raise ticket.error

    def _lead(self) -> None:
        with self._lock:
            group, self._queue = self._queue, []
        try:
            self._commit(group)
        finally:
            with self._lock:
                successor = self._queue[0] if self._queue else None
                if successor is None:
                    self._busy = False
                else:
                    successor.lead = True
            for ticket in group:
                ticket.finished = True
                ticket.event.set()
            if successor is not None:
                successor.event.set()

    def _commit(self, group: list[_Ticket[T]]) -> None:
        try:
            self._write([item for ticket in group for item in ticket.items])
            self.commits += 1
            return
        except BaseException as exc:
            if len(group) == 1:
                group[0].error = exc
                return
        for ticket in group:  # one bad caller must not fail the others
            try:
                self._write(ticket.items)
                self.commits += 1
            except BaseException as exc:
                ticket.error = exc

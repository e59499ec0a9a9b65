"""Reads that anyone may ask for, bounded like a public node's: the limits and the refusals.

A backend's :meth:`~ledger.chain.backends.base.ChainBackend.read_node` serves them. On the embedded
chain that is a pool of read-only reader processes over the committed chain file (see
``_readers.py``), so a slow read never takes the lock that writes take; on a JSON-RPC node it is
the node itself, which bounds its own calls.

The time a read may take is set per thread with :func:`read_deadline` (a JSON-RPC batch shares
one deadline between its calls); each call also has at most ``ReadLimits.time_budget``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ledger.errors import LedgerError

__all__ = [
    "ReadLimits",
    "ReadTimeout",
    "ReadersBusy",
    "extend_deadline",
    "read_deadline",
    "remaining_budget",
]


@dataclass(frozen=True)
class ReadLimits:
    """What one public read may cost.

    ``gas_cap``: gas of one ``eth_call`` or the top of one ``eth_estimateGas`` search;
    ``time_budget``: seconds of EVM (or log scanning) per call; ``readers``: reader processes,
    that is reads served at the same time.
    """

    gas_cap: int = 5_000_000
    time_budget: float = 1.0
    readers: int = 2

    def __post_init__(self) -> None:
        if self.gas_cap < 21_000 or self.time_budget <= 0 or self.readers < 1:
            raise ValueError(f"unusable read limits: {self}")


class ReadTimeout(LedgerError):
    """A read ran past its time budget and was aborted."""

    def __init__(self, budget: float) -> None:
        super().__init__(f"execution aborted (timeout = {budget:g}s)", budget=budget)
        self.budget = budget


class ReadersBusy(LedgerError):
    """Every reader was busy for as long as the read could wait."""

    def __init__(self, readers: int) -> None:
        super().__init__(f"all {readers} readers are busy; retry later", readers=readers)


_local = threading.local()


@contextmanager
def read_deadline(seconds: float) -> Iterator[None]:
    """Give the reads this thread makes inside the block ``seconds`` in all."""
    previous = getattr(_local, "deadline", None)
    _local.deadline = time.monotonic() + seconds
    try:
        yield
    finally:
        _local.deadline = previous


def extend_deadline(seconds: float) -> None:
    """Push this thread's deadline back by ``seconds`` (time the service spent, not the read:
    starting a reader)."""
    deadline = getattr(_local, "deadline", None)
    if deadline is not None:
        _local.deadline = deadline + seconds


def remaining_budget(per_call: float) -> float:
    """Seconds the next read on this thread may take: ``per_call``, or less when the thread's
    :func:`read_deadline` is nearer (0 once it has passed)."""
    deadline = getattr(_local, "deadline", None)
    if deadline is None:
        return per_call
    return max(0.0, min(per_call, deadline - time.monotonic()))

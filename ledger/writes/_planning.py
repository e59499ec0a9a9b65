"""The write path's decisions as functions of data, tested without a chain: which writes share
a transaction (:func:`chunks`), and which survive a simulation that reverts (:func:`simulated`).

Why apart from :mod:`ledger.writes.pipeline`: the pipeline is threads, locks, a node and a
journal; these two rules are arithmetic and bisection, and a wrong answer here costs gas or
fails a write that should pass. The pipeline hands them its writes and two effects (simulate a
call; answer a write with an error), so ``tests/ledger/test_write_planning.py`` can check every
branch with plain values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from ledger.chain._calls import GAS_BASE, batch_record_gas
from ledger.errors import LedgerError
from ledger.writes._items import (
    DEDUPED,
    WriteInput,
    calldata_bound,
    concerns_all,
    culprit,
    gas_refs_of,
)

__all__ = ["MAX_TX_BYTES", "Planned", "chunks", "simulated"]

MAX_TX_BYTES = 120_000  # calldata per transaction: geth's pool refuses transactions over 128 KiB


class Planned(Protocol):
    """A write as planning sees it: its key, its record, and whether it must go alone."""

    key: str
    item: WriteInput | None
    alone: bool


P = TypeVar("P", bound=Planned)


def chunks(kind: str, writes: Sequence[P], gas_limit: int) -> list[list[P]]:
    """Writes in order, in chunks whose call fits a block's gas and a pool's size limit."""
    if kind not in DEDUPED:
        return [[w] for w in writes]
    found: list[list[P]] = []
    current: list[P] = []
    gas, size = GAS_BASE, 0
    for write in writes:
        if write.alone:
            found.append([write])
            continue
        item = write.item
        more_gas = batch_record_gas(gas_refs_of(item))  # type: ignore[arg-type]
        more_size = calldata_bound(item)  # type: ignore[arg-type]
        if current and (gas + more_gas > gas_limit or size + more_size > MAX_TX_BYTES):
            found.append(current)
            current, gas, size = [], GAS_BASE, 0
        current.append(write)
        gas, size = gas + more_gas, size + more_size
    if current:
        found.append(current)
    return found


def simulated(
    writes: Sequence[P],
    simulate: Callable[[list[P]], None],
    fail: Callable[[P, LedgerError], None],
) -> list[P]:
    """2. The writes of a chunk whose simulation passes: each write a revert names is
    answered (``fail``) with that error and left out; a revert naming none splits the chunk.
    ``simulate`` raises the typed revert of a call holding the writes it is given."""
    survivors = list(writes)
    while survivors:
        try:
            simulate(survivors)
            return survivors
        except LedgerError as exc:
            named = culprit(exc, survivors)
            if named is not None:
                fail(named, exc)
                survivors.remove(named)
            elif len(survivors) == 1 or concerns_all(exc):
                for write in survivors:
                    fail(write, exc)
                return []
            else:
                middle = len(survivors) // 2
                return simulated(survivors[:middle], simulate, fail) + simulated(
                    survivors[middle:], simulate, fail
                )
    return []

"""The embedded chain's clock: a block carries the wall clock's second; blocks may share one.

py-evm dates a new header ``max(parent + 1, now)`` (``new_timestamp_from_parent``) and its
``validate_header`` wants every block strictly later than its parent. The embedded chain mines
one block per transaction, so a burst of writes pushed the chain one second ahead of the wall
clock per write (300 registrations in 14 s left it 285 s ahead), and a record's block time
then said something false: a receipt issued in that window carried an ``issued_at`` earlier
than the ``registered_at`` of the model that made it.

Development chains relax the rule instead: anvil, and Hardhat with
``allowBlocksWithSameTimestamp``, let several blocks share a second. The embedded chain's VM
rules are ours to set, so :func:`wall_clock_chain_class` runs the fork eth-tester runs, changed
in exactly two places:

1. a new header is dated :func:`wall_clock_second` of its parent's timestamp, that is
   ``max(parent timestamp, wall clock second)``;
2. ``validate_header`` accepts a block dated the same second as its parent (never earlier);
   every other header rule (number, gas limit, base fee, extra data, post-merge difficulty,
   nonce and ommers) is py-evm's own, checked unchanged.

A chain stored before this rule, whose head may be ahead of the wall clock, opens and keeps
working: its new blocks take the parent's timestamp until the wall clock catches up, then the
wall clock's second. Stored blocks are never re-validated and the header format is unchanged,
so no migration is needed, and older code can still open a chain written under this rule.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from eth.abc import BlockHeaderAPI, VirtualMachineAPI
from eth.chains.base import MiningChain

__all__ = ["wall_clock_chain_class", "wall_clock_second", "wall_clock_vm_class"]


def wall_clock_second(not_before: int) -> int:
    """The wall clock's current second, or ``not_before`` if the clock is still behind it.

    ``not_before`` is the parent block's timestamp (a new header) or the pending header's own
    (restamping an empty pending block): a block is never dated earlier than its parent.
    """
    return max(not_before, int(time.time()))


@functools.cache
def wall_clock_vm_class(fork: type[VirtualMachineAPI]) -> type[VirtualMachineAPI]:
    """``fork`` with the wall-clock timestamp rule (see the module docstring), nothing else."""

    class WallClockVM(fork):  # type: ignore[valid-type,misc]
        @classmethod
        def create_header_from_parent(
            cls, parent_header: BlockHeaderAPI | None, **header_params: Any
        ) -> BlockHeaderAPI:
            # 1. py-evm would say max(parent + 1, now); the genesis (no parent) keeps its own
            if parent_header is not None and "timestamp" not in header_params:
                header_params["timestamp"] = wall_clock_second(parent_header.timestamp)
            return super().create_header_from_parent(parent_header, **header_params)

        @classmethod
        def validate_header(
            cls, header: BlockHeaderAPI, parent_header: BlockHeaderAPI | None
        ) -> None:
            # 2. the same second as the parent is allowed: check every other rule against a
            # copy of the parent one second older, so py-evm's own checks run unchanged (they
            # read the parent's number, gas and fee fields, never its hash, the one other thing
            # a copy changes); a block earlier than its parent still fails "strictly later"
            if parent_header is not None and header.timestamp == parent_header.timestamp:
                parent_header = parent_header.copy(timestamp=parent_header.timestamp - 1)
            super().validate_header(header, parent_header)

    WallClockVM.__name__ = WallClockVM.__qualname__ = f"WallClock{fork.__name__}"
    return WallClockVM


@functools.cache
def wall_clock_chain_class(chain_class: type[MiningChain]) -> type[MiningChain]:
    """``chain_class`` (same chain id, gas rules, fork schedule) over wall-clock VMs."""
    vm_configuration = tuple(
        (block_number, wall_clock_vm_class(vm_class))
        for block_number, vm_class in chain_class.vm_configuration
    )
    name = f"WallClock{chain_class.__name__}"
    namespace = {"vm_configuration": vm_configuration, "__module__": __name__, "__qualname__": name}
    return type(name, (chain_class,), namespace)

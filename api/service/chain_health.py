"""What the service tells an operator about the chain moving under it: reorganisations.

A reorganisation shallower than the confirmations is the chain working as designed: the write
pipeline sends the writes it took again, and nothing but ``GET /v1/chain`` mentions it. One
deeper than the confirmations took blocks the service had called final: the index rewinds them
and the pipeline re-sends its own transactions from the journal (:mod:`ledger.writes._recovery`),
but an operator must hear of it, because it means the confirmations are too few for this chain
(or the node was reset). So it is logged as an error with the blocks, and ``/healthz`` says
``degraded`` with the reason for :data:`ALERT_SECONDS` after the last one (long enough for a
monitor polling every few minutes to see it, short enough to clear by itself once healed).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from ledger.index.sqlite import Rewind

__all__ = ["ALERT_SECONDS", "ChainHealth", "DeepReorg"]

ALERT_SECONDS = 3600.0
log = logging.getLogger("provenance.service")


@dataclass(frozen=True)
class DeepReorg:
    """A reorganisation past the final depth, as the index found it."""

    fork_block: int
    last_block: int
    depth: int  # final blocks orphaned
    transactions: int  # transactions whose events left with them
    resent: int  # of those, the service's own, sent again from its journal
    seen_at: float  # wall-clock seconds


class ChainHealth:
    """The reorganisations past finality this process has seen; safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deep: list[DeepReorg] = []

    def deep_reorg(self, rewind: Rewind, resent: int) -> DeepReorg:
        """Record one and log it loudly."""
        seen = DeepReorg(
            rewind.fork_block,
            rewind.last_block,
            rewind.depth,
            len(rewind.tx_hashes),
            resent,
            time.time(),
        )
        with self._lock:
            self._deep.append(seen)
            del self._deep[:-100]
        log.error(
            "REORGANISATION PAST FINALITY: blocks %d-%d, which the service held final, left "
            "the canonical chain (%d transaction(s); %d of the service's own sent again from "
            "its journal); raise PROVENANCE_CONFIRMATIONS for this chain",
            rewind.fork_block + 1,
            rewind.last_block,
            len(rewind.tx_hashes),
            resent,
        )
        return seen

    def deepest(self) -> DeepReorg | None:
        with self._lock:
            return max(self._deep, key=lambda r: r.depth, default=None)

    def problems(self, now: float | None = None) -> list[str]:
        """Why the service is degraded (empty when it is not)."""
        now = time.time() if now is None else now
        with self._lock:
            recent = [r for r in self._deep if now - r.seen_at < ALERT_SECONDS]
        return [
            f"a reorganisation past the final depth orphaned blocks {r.fork_block + 1}-"
            f"{r.last_block} ({r.depth} final block(s), {r.transactions} transaction(s), "
            f"{r.resent} re-sent) at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(r.seen_at))}"
            for r in recent
        ]

"""The write pipeline's recovery: what a previous run left in flight (step 3 of the states
written down at the top of :mod:`ledger.writes.pipeline`), and what a reorganisation deeper
than the confirmations took off the chain after it was final.

Why a module of its own: the pipeline stays under our file-size bound. :class:`Recovery` is a
mixin of :class:`~ledger.writes.pipeline.WritePipeline` and nothing else, under the rules
written there (shared fields touched under ``_lock``); it hands the transactions it puts back
in flight to the waiter (:mod:`ledger.writes._waiter`), which answers them as any other.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ledger.writes._items import Included
from ledger.writes._waiter import _InFlight, _Write

if TYPE_CHECKING:
    from ledger.writes._journal import TxJournal

__all__ = ["Recovery"]

log = logging.getLogger("provenance.writes")


class Recovery:
    """Re-sending journaled transactions; mixed into WritePipeline."""

    # the pipeline's fields this part reads and writes (set by WritePipeline.__init__)
    client: Any
    journal: TxJournal | None
    _transactor: Any
    _lock: threading.Lock
    _sent: threading.Condition
    _open: dict[str, _Write]
    _in_flight: list[_InFlight]
    _recent: OrderedDict[str, Included]

    _start_waiter: Callable[[], None]  # WritePipeline's
    _first_receipt: Callable[[Sequence[Any]], Any | None]  # the Waiter's

    def recover(self) -> int:
        """Re-send what the journal says a previous run left in flight, before any new write
        takes a nonce; returns how many nonces are still in flight."""
        if self.journal is None:
            return 0
        entries = self.journal.entries()
        if not entries:
            return 0
        self._transactor.reserve_through(entries[-1].nonce)
        confirmed = self._transactor.confirmed_nonce()
        head = self.client.latest_block()
        recovered = 0
        for entry in entries:
            mined = self._first_receipt(entry.variants)
            if mined is None and entry.nonce < confirmed:
                log.warning("nonce %d was used by another transaction; forgotten", entry.nonce)
                self.journal.done(entry.nonce)
                continue
            writes = [_Write(key, None, None, []) for key in entry.keys]
            flight = _InFlight(entry.nonce, writes, list(entry.variants), head)
            if entry.block_number is not None and entry.block_hash is not None:
                flight.mined_in = (entry.block_number, bytes.fromhex(entry.block_hash[2:]))
            if mined is None:
                self._transactor.rebroadcast(entry.variants[-1])
            with self._lock:
                for write in writes:
                    self._open.setdefault(write.key, write)
                self._in_flight.append(flight)
                self._start_waiter()
                self._sent.notify()
            recovered += 1
        log.info("recovered %d transaction(s) in flight from the journal", recovered)
        return recovered

    def resend_orphaned(self, tx_hashes: Sequence[str]) -> int:
        """Send again, from the journal, this pipeline's transactions among ``tx_hashes``,
        whose blocks left the canonical chain after they were final (the index found them in
        the blocks it rewound); returns how many nonces went back in flight. Each is
        answered, as any write, when it is final again; its records read as not registered
        meanwhile. A transaction the journal no longer holds is logged: it cannot be re-sent."""
        if self.journal is None:
            return 0
        with self._lock:
            flying = {signed.tx_hash for f in self._in_flight for signed in f.variants}
        entries = []
        for tx_hash in tx_hashes:
            if tx_hash in flying:
                continue
            entry = self.journal.reopen(tx_hash)
            if entry is None:
                log.error("transaction %s left the chain and the journal lacks it", tx_hash)
            else:
                entries.append(entry)
        head = self.client.latest_block()
        for entry in sorted({e.nonce: e for e in entries}.values(), key=lambda e: e.nonce):
            writes = [_Write(key, None, None, []) for key in entry.keys]
            flight = _InFlight(entry.nonce, writes, list(entry.variants), head)
            with self._lock:
                for write in writes:
                    self._recent.pop(write.key, None)
                    self._open.setdefault(write.key, write)
                self._in_flight.append(flight)
            self._transactor.rebroadcast(entry.variants[-1])
            log.warning("re-sent the transaction at nonce %d from the journal", entry.nonce)
            with self._lock:
                self._start_waiter()
                self._sent.notify()
        return len(entries)

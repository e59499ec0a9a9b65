"""The write pipeline's recovery: what a previous run left in flight (step 3 of the states
written down at the top of :mod:`ledger.writes.pipeline`), what a reorganisation deeper
than the confirmations took off the chain after it was final, and the writes answered on
acceptance (journaled before the answer, queued again after a crash, settled once final).

Why a module of its own: the pipeline stays under our file-size bound. :class:`Recovery` is a
mixin of :class:`~ledger.writes.pipeline.WritePipeline` and nothing else, under the rules
written there (shared fields touched under ``_lock``); it hands the transactions it puts back
in flight to the waiter (:mod:`ledger.writes._waiter`), which answers them as any other.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from ledger.records import DatasetInput, ModelInput
from ledger.writes._items import Included, RevokeInput, RoleInput, WriteInput, key_of, kind_of
from ledger.writes._waiter import _InFlight, _Write

if TYPE_CHECKING:
    from ledger.writes._journal import JournalEntry, TxJournal

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
    _accepted: set[str]
    submit_many: Callable[[Sequence[Any]], list[Any]]  # WritePipeline's

    _start_waiter: Callable[[], None]  # WritePipeline's
    _first_receipt: Callable[[Sequence[Any]], Any | None]  # the Waiter's

    def accept_many(self, items: Sequence[WriteInput]) -> list[Future[Included]]:
        """Queue writes (datasets, models, revocations) for a client answered on acceptance
        (202): their fields are written to the journal, durably, before they are queued and
        before this returns, so a crash after the answer re-queues them at start-up
        (:meth:`recover`); they leave the journal once final, or refused for good. Needs a
        journal (RPC nodes)."""
        if self.journal is None:
            raise ValueError("writes are answered on acceptance only with a journal (RPC nodes)")
        rows = [
            (key_of(item), kind_of(item), json.dumps(dataclasses.asdict(item))) for item in items
        ]
        self.journal.accept(rows)
        with self._lock:
            self._accepted.update(key for key, _, _ in rows)
        return self.submit_many(items)

    def _settle(self, writes: Sequence[_Write]) -> None:
        """Writes answered on acceptance that are final or refused leave the journal."""
        with self._lock:
            keys = [w.key for w in writes if w.key in self._accepted]
            self._accepted.difference_update(keys)
        if keys and self.journal is not None:
            self.journal.settle(keys)

    def recover(self) -> int:
        """Re-send what the journal says a previous run left in flight, before any new write
        takes a nonce; returns how many nonces are still in flight."""
        if self.journal is None:
            return 0
        entries = self.journal.entries()
        recovered = self._recover_flights(entries) if entries else 0
        self._requeue_accepted()
        return recovered

    def _requeue_accepted(self) -> None:
        """Queue again every write answered on acceptance that is not settled and not in
        flight: one a crash took before it was sent, or whose transaction the chain refused
        meanwhile. One registered already is refused by its simulation, and settled."""
        assert self.journal is not None
        rows = self.journal.accepted()
        with self._lock:
            self._accepted.update(key for key, _, _ in rows)
            missing = [(kind, item) for key, kind, item in rows if key not in self._open]
        if missing:
            self.submit_many([_accepted_input(kind, item) for kind, item in missing])
            log.info("queued %d accepted write(s) again from the journal", len(missing))

    def _recover_flights(self, entries: Sequence[JournalEntry]) -> int:
        assert self.journal is not None
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


_ACCEPTED_KINDS: dict[str, type] = {
    "dataset": DatasetInput,
    "model": ModelInput,
    "revoke": RevokeInput,
    "role": RoleInput,
}


def _accepted_input(kind: str, text: str) -> WriteInput:
    """The write an accepted journal row holds (its fields as :meth:`accept_many` wrote them;
    lists back to tuples)."""
    fields = json.loads(text)
    return _ACCEPTED_KINDS[kind](
        **{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    )

"""The waiter's half of the write pipeline: steps 4-6 of the states written down at the top of
:mod:`ledger.writes.pipeline` (read the receipts of what is in flight once per new head,
re-send what waited ``resend_after_blocks`` blocks or left the node or its block, fill nonce
gaps, answer every request of a final transaction, mark its nonce done).

Why a module of its own: the pipeline ran past 600 lines as one class. :class:`Waiter` is a
mixin of :class:`~ledger.writes.pipeline.WritePipeline` and nothing else: it shares the
pipeline's lock and fields under the rules written there (every shared field is touched under
``_lock``; only the sender starts a send, only the waiter reads receipts); ``_answer`` and
``_fail``, which the sender's half uses too, live here with the records the two halves hand
each other (:class:`_Write`, :class:`_InFlight`). Over 400 lines because the re-checks of a
head (receipts, reorganisations, lost transactions, nonce gaps, fee ceiling) are one loop whose
cases are read together.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from typing import TYPE_CHECKING, Any

from ledger.chain._transactor import SignedTx
from ledger.chain.client import tx_result
from ledger.errors import ChainUnavailable, FeeAboveCeiling, LedgerError, TransactionFailed
from ledger.records import hash_hex
from ledger.writes._items import (
    DEDUPED,
    Included,
    WriteInput,
    call_for,
    culprit,
    event_key,
    kind_of,
)

if TYPE_CHECKING:
    from ledger.writes._journal import TxJournal

__all__ = ["MAX_GAP", "Waiter"]

MAX_GAP = 64  # nonces a gap may span and still be filled (see Waiter._fill_gap)

log = logging.getLogger("provenance.writes")


@dataclass(eq=False)
class _Request:
    item: WriteInput
    future: Future[Included] = field(default_factory=Future)
    early: bool = False  # answered at inclusion, before the block is final


@dataclass(eq=False)
class _Write:
    """One key in the pipeline and every request waiting for it (the first one makes it)."""

    key: str
    kind: str | None  # None: recovered from the journal, known by its key only
    item: WriteInput | None
    requests: list[_Request]
    alone: bool = False  # send in a transaction of its own (after a revert naming no record)


@dataclass(eq=False)
class _InFlight:
    """One nonce in the node's pool: its signed variants (newest last) and its writes."""

    nonce: int
    writes: list[_Write]
    variants: list[SignedTx]
    sent_at_block: int
    checked_at: bytes = b""  # the hash of the head it was last checked at
    sent_at: float = field(default_factory=time.monotonic)  # when it was last (re)sent
    mined_in: tuple[int, bytes] | None = None  # (number, hash) of its block, until final


class Waiter:
    """Steps 5-6 of the write pipeline (see the module docstring); mixed into WritePipeline."""

    # the pipeline's fields this half reads and writes (set by WritePipeline.__init__)
    client: Any
    journal: TxJournal | None
    poll_interval: float
    idle_timeout: float
    resend_after_blocks: int
    _transactor: Any
    _lock: threading.Lock
    _work: threading.Condition
    _sent: threading.Condition
    _queue: list[_Write]
    _open: dict[str, _Write]
    _in_flight: list[_InFlight]
    _last_block: int | None
    _blocks: OrderedDict[bytes, Any]
    _recent: OrderedDict[str, Included]
    _recent_size: int
    _accepted: set[str]
    _settle: Callable[[Sequence[_Write]], None]  # Recovery's
    _closed: bool
    deepest_reorg: int
    waiting_for: str | None
    resend_orphaned: Callable[[Sequence[str]], int]  # Recovery's
    _waiter: threading.Thread | None

    def _answer(self, write: _Write, included: Included, *, early: bool = False) -> None:
        """Answer the requests of a write (``early``: only those that asked to be answered at
        inclusion; the write stays open until final) and remember it for repeats."""
        with self._lock:
            if not early and self._open.get(write.key) is write:
                del self._open[write.key]
            if write.kind in DEDUPED or (write.kind is None and ":" not in write.key):
                self._recent[write.key] = included
                self._recent.move_to_end(write.key)
                while len(self._recent) > self._recent_size:
                    self._recent.popitem(last=False)
            requests = list(write.requests)
        for position, request in enumerate(requests):
            made = position == 0 and write.item is not None
            if not request.future.done() and (request.early or not early):
                request.future.set_result(dc_replace(included, created=made))

    def _fail(self, write: _Write, exc: LedgerError) -> None:
        self._settle([write])
        with self._lock:
            if self._open.get(write.key) is write:
                del self._open[write.key]
            requests = list(write.requests)
        for request in requests:
            if not request.future.done():
                request.future.set_exception(exc)

    def _start_sender(self) -> None:
        raise NotImplementedError  # WritePipeline's

    def _wait_loop(self) -> None:
        while True:
            with self._lock:
                if not self._in_flight:
                    idle = self._closed or not self._sent.wait(self.idle_timeout)
                    if idle and not self._in_flight:
                        self._waiter = None
                        return
                    continue
                flights = list(self._in_flight)
            try:
                self._check(flights)
            except ChainUnavailable as exc:
                log.warning("waiting for writes: %s", exc)
            except Exception:
                log.exception("the write pipeline failed to read a receipt")
            with self._lock:
                if self._in_flight and not self._closed:
                    # soon after a send, look often (an automining node has mined it already);
                    # then at the poll interval, which suits a chain with block times
                    newest = max(flight.sent_at for flight in self._in_flight)
                    young = time.monotonic() - newest < self.poll_interval
                    self._sent.wait(self.poll_interval / 10 if young else self.poll_interval)

    def _check(self, flights: list[_InFlight]) -> None:
        """5. Read the receipts of what is in flight, once per new head (a new block, or the
        same height with another hash after a reorganisation); re-send what waited
        ``resend_after_blocks`` blocks; send again what a reorganisation took out of its block
        (see :meth:`_orphaned`)."""
        latest = self.client.get_block("latest")
        self._transactor.note_block(latest)
        head, head_hash = latest["number"], bytes(latest["hash"])
        self._remember(head_hash, latest)  # the block a receipt just found is usually this one
        self.client.note_head(head)  # the answers' confirmations need not read it again
        final = head - self.client.backend.confirmations
        final_now: list[tuple[_InFlight, Any]] = []  # answered below, their blocks told first
        for flight in flights:
            if flight.checked_at == head_hash:
                continue  # no new head since the last look: nothing can have changed
            flight.checked_at = head_hash
            if flight.sent_at_block < 0:
                flight.sent_at_block = head
            receipt = self._first_receipt(flight.variants)
            if receipt is not None:
                if receipt["blockNumber"] <= final:
                    final_now.append((flight, receipt))
                else:
                    self._mined(flight, receipt)
                continue
            if flight.mined_in is not None:
                self._orphaned(flight, head)
            elif head > flight.sent_at_block and not self._known(flight):
                self._missing(flight, head)
            elif head - flight.sent_at_block >= self.resend_after_blocks:
                self._resend(flight, head)
        # a block holding several of these transactions is told once, with all their receipts
        # (the index applies a block from receipts only when it has every transaction's)
        self._tell_included([r for _, r in final_now if r["status"] == 1])
        for flight, receipt in final_now:
            self._included(flight, receipt, told=True)
        if any(f.mined_in is None and head > f.sent_at_block >= 0 for f in flights):
            self._fill_gap(head)

    def _known(self, flight: _InFlight) -> bool:
        return any(self._transactor.known(v.tx_hash) for v in reversed(flight.variants))

    def _missing(self, flight: _InFlight, head: int) -> None:
        """3. The node lost it (dropped from its pool, taken out by a reorganisation before
        this pipeline saw it mined, a node restarted without its pool): the same signed bytes
        again, at once (fees are raised if the node refuses them, and as usual if it keeps
        them ``resend_after_blocks`` blocks without mining them)."""
        if not self._transactor.rebroadcast(flight.variants[-1]):
            self._resend(flight, head)  # refused as it was (underpriced now): raise the fees
            return
        log.warning("transaction at nonce %d was missing from the node: sent again", flight.nonce)

    def _fill_gap(self, head: int) -> None:
        """3. Nonces below this pipeline's lowest in flight that neither the chain nor the
        node's pool holds (so nothing after them can be mined): each is sent again from the
        journal if it holds one, else filled with a transfer of nothing to itself. A gap wider
        than :data:`MAX_GAP` is not filled (the node is not the chain these nonces were sent
        to) but logged."""
        with self._lock:
            if not self._in_flight:
                return
            lowest = min(f.nonce for f in self._in_flight if f.nonce >= 0)
        pending = self._transactor.pending_nonce()
        if pending >= lowest:
            return
        if lowest - pending > MAX_GAP:
            log.error("nonces %d-%d are missing from the chain: not filled", pending, lowest - 1)
            return
        for nonce in range(pending, lowest):
            tx_hash = None if self.journal is None else self.journal.newest_at(nonce)
            if tx_hash is not None and self.resend_orphaned([tx_hash]):
                continue
            filler = self._transactor.filler(nonce)
            if self.journal is not None:
                self.journal.record(filler, [])
            flight = _InFlight(nonce, [], [filler], head)
            with self._lock:
                self._in_flight.append(flight)
            self._transactor.rebroadcast(filler)
            log.warning("nonce %d was missing and nothing journaled fills it: filled", nonce)

    def _mined(self, flight: _InFlight, receipt: Any) -> None:
        """Mined, not final yet: remember the block by number and hash (in the journal too, so
        a restart re-checks it), and look again at every new head."""
        mined_in = (receipt["blockNumber"], bytes(receipt["blockHash"]))
        if flight.mined_in == mined_in:
            return
        flight.mined_in = mined_in
        if self.journal is not None:
            self.journal.included(flight.nonce, mined_in[0], hash_hex(mined_in[1]))
        early = any(r.early and not r.future.done() for w in flight.writes for r in w.requests)
        if early and receipt["status"] == 1:  # asked to be answered at inclusion: now
            for write, included in self._inclusions(flight, receipt):
                self._answer(write, included, early=True)

    def _orphaned(self, flight: _InFlight, head: int) -> None:
        """Its block left the canonical chain before it was final: back to broadcast, with
        its journaled signed bytes at the same nonce, and answered when it is mined again."""
        assert flight.mined_in is not None
        depth = head - flight.mined_in[0] + 1
        log.warning(
            "transaction at nonce %d left the canonical chain with block %d (%s), a "
            "reorganisation at least %d block(s) deep; sending it again",
            flight.nonce,
            flight.mined_in[0],
            hash_hex(flight.mined_in[1]),
            depth,
        )
        with self._lock:
            self.deepest_reorg = max(self.deepest_reorg, depth)
            flight.mined_in = None
            flight.sent_at_block, flight.sent_at = head, time.monotonic()
            for write in flight.writes:
                self._recent.pop(write.key, None)  # not registered while off the chain
        if self.journal is not None:
            self.journal.reopen(flight.variants[-1].tx_hash)
        self._transactor.rebroadcast(flight.variants[-1])

    def _first_receipt(self, variants: Sequence[SignedTx]) -> Any | None:
        for signed in reversed(variants):
            receipt = self._transactor.receipt(signed.tx_hash)
            if receipt is not None:
                return receipt
        return None

    def _resend(self, flight: _InFlight, head: int) -> None:
        """4. Not mined in time: the same nonce with higher fees, or, if the nonce was used by
        another transaction, the writes queued again."""
        if self._transactor.confirmed_nonce() > flight.nonce:
            receipt = self._first_receipt(flight.variants)
            if receipt is not None:
                self._included(flight, receipt)
                return
            log.warning("nonce %d was used by another transaction; re-queueing", flight.nonce)
            self._forget(flight)
            self._requeue(flight.writes, alone=False)
            return
        try:
            replacement = self._transactor.replace(flight.variants[-1])
        except FeeAboveCeiling as exc:  # it waits at the fee it has; handed over again
            with self._lock:
                flight.sent_at_block = head
                if self.waiting_for is None:
                    log.warning("a write waits: %s", exc)
                self.waiting_for = str(exc)
            self._transactor.rebroadcast(flight.variants[-1])
            return
        if self.journal is not None:
            self.journal.record(replacement, [w.key for w in flight.writes])
        with self._lock:
            flight.variants.append(replacement)
            flight.sent_at_block, flight.sent_at = head, time.monotonic()
        accepted = self._transactor.rebroadcast(replacement)
        log.warning(
            "transaction at nonce %d not mined in %d blocks: re-sent as %s with fee cap %d (%s)",
            flight.nonce,
            self.resend_after_blocks,
            replacement.tx_hash,
            replacement.max_fee,
            "accepted" if accepted else "refused",
        )

    def _included(self, flight: _InFlight, receipt: Any, *, told: bool = False) -> None:
        """5-6. Answer every request of a mined transaction, then forget the nonce (``told``:
        its block was handed to ``on_included`` already)."""
        if receipt["status"] == 1:
            tx = tx_result(receipt)
            if not told:  # before the answers: a request that follows reads it
                self._tell_included([receipt])
            for write, included in self._inclusions(flight, receipt):
                if included is None:
                    self._fail(
                        write, TransactionFailed(f"{tx.tx_hash} holds no event for {write.key}")
                    )
                else:
                    self._answer(write, included)
            with self._lock:
                self._last_block = max(self._last_block or 0, tx.block_number)
                self.waiting_for = None  # a write went through: whatever held one is past
            self._settle(flight.writes)
            self._forget(flight)
            return
        self._forget(flight)
        # A revert: the replay names the record that caused it; the others go again.
        kind = next((w.kind for w in flight.writes if w.kind is not None), None)
        items = [w.item for w in flight.writes if w.item is not None]
        exc: LedgerError
        if kind is not None and len(items) == len(flight.writes):
            exc = self._transactor.explain_failure(
                self.client.transaction(call_for(kind, items)), receipt
            )
        else:
            exc = TransactionFailed(
                f"transaction {hash_hex(bytes(receipt['transactionHash']))} reverted"
            )
        named = culprit(exc, flight.writes)
        if named is None and len(flight.writes) == 1:
            named = flight.writes[0]
        if named is not None:
            self._fail(named, exc)
            self._requeue([w for w in flight.writes if w is not named], alone=False)
        else:
            self._requeue(flight.writes, alone=True)

    def _tell_included(self, receipts: list[Any]) -> None:
        """Hand final successful receipts, with their blocks, to ``on_included`` (the service's
        index, which records a block from them instead of reading it again), one call per
        block. Whatever it raises is only logged: the writes are on chain either way, and the
        index's sync reads the block from the chain when this did not."""
        hook = self.on_included
        if hook is None or not receipts:
            return
        by_block: dict[bytes, list[Any]] = {}
        for receipt in receipts:
            by_block.setdefault(bytes(receipt["blockHash"]), []).append(receipt)
        for block_hash, in_block in by_block.items():
            try:
                hook(self._block(block_hash), in_block)
            except Exception:
                log.warning("indexing block %s from its receipts failed",
                            in_block[0]["blockNumber"], exc_info=True)  # fmt: skip

    def _inclusions(self, flight: _InFlight, receipt: Any) -> list[tuple[_Write, Included | None]]:
        """Each write of a successful transaction with its inclusion (None: its event is
        missing), from the receipt's events and its block's time."""
        block = self._block(bytes(receipt["blockHash"]))
        tx = tx_result(receipt)
        events = {
            key: event
            for event in self.client.decode_logs(receipt["logs"])
            if (key := event_key(event)) is not None
        }
        found: list[tuple[_Write, Included | None]] = []
        for write in flight.writes:
            event = events.get(write.key)
            missing = event is None and write.kind != "role"
            found.append(
                (
                    write,
                    None
                    if missing
                    else Included(
                        event, block["timestamp"], tx.tx_hash, tx.block_number, tx.gas_used
                    ),
                )
            )
        return found

    def _block(self, block_hash: bytes) -> Any:
        """A mined block's header (for its time), read once for all its transactions; by hash,
        so a block number mined again after a reorganisation is read again."""
        with self._lock:  # the sender and the waiter both answer mined transactions
            block = self._blocks.get(block_hash)
        if block is None:
            block = self.client.get_block("0x" + block_hash.hex())  # not under the lock: I/O
            self._transactor.note_block(block)
            self.client.note_mined(block["number"])
            self._remember(block_hash, block)
        return block

    def _remember(self, block_hash: bytes, block: Any) -> None:
        with self._lock:
            self._blocks[block_hash] = block
            while len(self._blocks) > 8:
                self._blocks.popitem(last=False)

    def _forget(self, flight: _InFlight) -> None:
        with self._lock:
            if flight in self._in_flight:
                self._in_flight.remove(flight)
            self._work.notify()  # a slot is free
        if self.journal is not None:
            self.journal.done(flight.nonce)

    def _requeue(self, writes: list[_Write], *, alone: bool) -> None:
        """Queue writes again, first in line; a recovered write goes again only for the
        requests that joined it (it has no record of its own to send)."""
        again = []
        for write in writes:
            if write.item is None:
                if not write.requests:
                    with self._lock:
                        self._open.pop(write.key, None)
                    continue
                write.item, write.kind = write.requests[0].item, kind_of(write.requests[0].item)
            write.alone = write.alone or alone
            again.append(write)
        with self._lock:
            self._queue[:0] = again
            self._start_sender()
            self._work.notify()

"""Gathering concurrent writes into as few transactions and blocks as possible.

The states (queued, sent, included, failed), the splitting of a batch that reverts, and the
re-send of a stuck transaction are one protocol, and its crash-safety argument is read top to
bottom here, which is why this file runs past 400 lines. The parts live beside it: the kinds
of write in ``ledger/writes/_items.py``, the planning (chunks, the bisecting simulation) in
``ledger/writes/_planning.py``, the waiter's half (steps 4-6) in ``ledger/writes/_waiter.py``,
the recovery (step 3 after a crash, step 7) in ``ledger/writes/_recovery.py`` and the journal
in ``ledger/writes/_journal.py``.

A *write* is one record to put on chain (a dataset, a model, a prediction batch, a revocation,
a registrar change) and the requests waiting for it. The service's threads hand writes to the
:class:`WritePipeline` and wait. One *round* at a time is sent: every write queued while the
previous round was being sent, together, as one batch transaction per kind
(``registerDatasets``, ``registerModels``, ``anchorPredictionBatches``), split where a block or
a node's pool could not hold it, at consecutive nonces, without waiting for the transactions
already in flight (at most ``max_in_flight``; past that, writes gather until a block frees a
slot). No fixed delay: a lone request is sent the moment it arrives, by its own thread when no
round is being sent, and the gathering comes from the time the chain takes. A waiter thread
answers each request once its transaction is mined with the backend's confirmations on top,
looking often just after a send and then once per ``poll_interval``.

A write goes through these states; each line says what a crash there leaves, and why it is
safe.

1. *queued*: in memory only. A crash loses requests nobody was answered for; their clients see
   a broken connection and retry, and a retry finds the record on chain if it got there.
2. *planned*: gathered into a chunk that fits a block (gas and calldata). On RPC nodes the
   chunk is simulated (``eth_call``); a revert names a record (``ledger.errors`` carries its
   hash), that write alone is answered with the typed error, and the rest is simulated again.
   A revert naming no record splits the chunk in halves. Nothing has been signed.
3. *journaled* (RPC nodes): signed at the next nonce (:class:`~ledger.chain._transactor.Transactor`
   owns them) and written to the journal (:mod:`ledger.writes._journal`) before the node sees it.
   After a crash, start-up sends those very bytes again (:meth:`WritePipeline.recover`): a
   node that holds them says so, one that lost them fills the nonce, nothing goes out twice,
   and a retried request for one of its records waits for it instead of sending another.
4. *sent*: in the node's pool. Not mined within ``resend_after_blocks`` blocks, it is signed
   again at the same nonce with both fees raised by 12.5% (journaled first, like any send).
   If the nonce was used by another transaction meanwhile, its writes are queued again. One
   the node no longer knows (dropped from its pool, a node restarted without its pool) is
   handed over again as it was at the next head; and nonces below the lowest in flight that
   neither the chain nor the pool holds are filled, from the journal or with a transfer of
   nothing to itself, so no write waits behind a nonce nobody will send (``_fill_gap``).
5. *included*: the receipt is read, and its block's number and hash are noted (in the journal
   too). Until the block is final (the backend's confirmations deep), every new head (a new
   block, or the same height under another hash) re-reads the receipt: gone, or in another
   block, the transaction left the canonical chain, and it goes back to 4 with its journaled
   signed bytes, same nonce (``_orphaned`` in ``_waiter.py``).
6. *final*: success: every request is answered with its record's event and its block's time
   (the node's own answer; nothing else is read), and the record is kept in
   :meth:`WritePipeline.recent` for requests that repeat it. A revert: it is replayed on its
   parent block to learn which record it names; that write gets the error, the others are
   queued again (each alone, if the revert names none). The journal marks the nonce done
   (keeping its signed bytes for a while). A crash between 5 and 6 re-sends a mined
   transaction at start-up, which the node refuses as known, and the waiter then finds it.
7. *orphaned past finality*: a reorganisation deeper than the confirmations takes a final
   block away. The index notices (its stored block hashes) and names the transactions of the
   orphaned blocks; :meth:`WritePipeline.resend_orphaned` (``_recovery.py``) re-opens them in
   the journal *before* the index commits its rewind (a crash in between re-opens them
   again), sends them again and they go through 4-6 as any other.

The embedded chain has no pool: ``eth_sendRawTransaction`` executes, mines and stores the block
before it returns, under the process's exclusive lock on the chain directory, so a write there
is never in flight across a crash and needs no journal, and its receipt is read at once by the
sender. It is also the only writer of its chain, and the service checks every precondition of a
registration before handing it over (the hash is not registered, its inputs are registered and
live), so registrations there are not simulated (``simulate_registrations=False``): a
simulation would only repeat the transaction's own EVM run. A registration that reverts anyway
(a revocation raced it) costs one failed transaction and is explained by replay. Anchors,
revocations and registrar changes are simulated on every backend: their refusals are decided on
chain.

Revocations and registrar changes have no batch function: each is its own transaction, still
sent without waiting for the ones before it, so several share a block.

The module is longer than our usual 400 lines because the states above are one protocol: the
sender and the recovery stay here with the rules every shared field follows (touched under
``_lock``; a write answered once, by ``_answer`` or ``_fail``), and the waiter's half, a mixin
of :class:`WritePipeline` in ``_waiter.py``, keeps to the same rules.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace as dc_replace
from typing import Any

from ledger.chain._transactor import SignedTx
from ledger.chain.client import LedgerClient
from ledger.errors import (
    ChainUnavailable,
    FeeAboveCeiling,
    GasLimitExceeded,
    LedgerError,
    TransactionFailed,
)
from ledger.writes._items import (
    DEDUPED,
    ORDER,
    Included,
    RevokeInput,
    RoleInput,
    WriteInput,
    call_for,
    key_of,
    kind_of,
)
from ledger.writes._journal import TxJournal
from ledger.writes._planning import MAX_TX_BYTES, chunks, simulated
from ledger.writes._recovery import Recovery
from ledger.writes._waiter import Waiter, _InFlight, _Request, _Write

__all__ = [
    "MAX_TX_BYTES",
    "Included",
    "RevokeInput",
    "RoleInput",
    "WriteInput",
    "WritePipeline",
]

log = logging.getLogger("provenance.writes")


class WritePipeline(Recovery, Waiter):
    """Gathers writes from many threads into few transactions; see the module's states.

    ``journal`` (RPC nodes) makes sends survive a crash; ``simulate_registrations`` is False
    only on the embedded chain (see the module docstring). Its threads start with the first
    write and stop after ``idle_timeout`` seconds without one, so an idle pipeline holds
    nothing; :meth:`close` stops it for good.
    """

    def __init__(
        self,
        client: LedgerClient,
        *,
        journal: TxJournal | None = None,
        simulate_registrations: bool = True,
        resend_after_blocks: int = 3,
        max_in_flight: int = 16,
        poll_interval: float = 0.05,
        timeout: float = 120.0,
        recent_size: int = 10_000,
        idle_timeout: float = 2.0,
        fee_retry: float = 1.0,
    ) -> None:
        if resend_after_blocks < 1:
            raise ValueError("resend_after_blocks must be 1 or more")
        self.client = client
        self.journal = journal
        self.simulate_registrations = simulate_registrations
        self.resend_after_blocks = resend_after_blocks
        self.max_in_flight = max_in_flight
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.idle_timeout = idle_timeout
        self.fee_retry = fee_retry  # seconds between fee reads while they are over the ceiling
        self.waiting_for: str | None = None  # why writes wait (fees over the ceiling), if so
        self._held_until = 0.0  # no round starts before (monotonic seconds)
        self._transactor = client.transactor
        self._instant = client.backend.kind == "embedded"  # mined inside the send itself
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the sender waits here
        self._sent = threading.Condition(self._lock)  # the waiter waits here
        self._queue: list[_Write] = []
        self._sending: list[_Write] = []  # the round being sent
        self._round_active = False
        self._open: dict[str, _Write] = {}  # deduplicated keys, queued or in flight
        self._in_flight: list[_InFlight] = []
        self._recent: OrderedDict[str, Included] = OrderedDict()
        self._recent_size = recent_size
        self._last_block: int | None = None
        self._blocks: OrderedDict[bytes, Any] = OrderedDict()  # recent mined blocks, by hash
        self.deepest_reorg = 0  # the deepest reorganisation seen to take one of its writes
        self._closed = False
        self._accepted: set[str] = set()  # keys answered on acceptance, not settled yet
        self._sender: threading.Thread | None = None
        self._waiter: threading.Thread | None = None
        # told of each final successful transaction, with its block, before its requests are
        # answered (the service indexes the block from it: ledger.index._receipts)
        self.on_included: Callable[[Any, Sequence[Any]], object] | None = None

    # -- the requests' side -------------------------------------------------------------------

    def submit_many(
        self, items: Sequence[WriteInput], *, early: bool = False
    ) -> list[Future[Included]]:
        """Queue ``items`` together (they are gathered into the same round) and return one
        future each, resolved once the write is final (``early``: once it is included in a
        block, which a reorganisation may still take away). A write-once record already
        queued, in flight or just written is not queued again: its future follows that write
        (``created`` False)."""
        requests = self._enqueue(items, early)
        with self._lock:
            self._start_sender()
            self._work.notify()
        return [r.future for r in requests]

    def _enqueue(self, items: Sequence[WriteInput], early: bool = False) -> list[_Request]:
        requests = [_Request(item, early=early) for item in items]
        with self._lock:
            if self._closed:
                raise ChainUnavailable("the write pipeline is closed (the service is stopping)")
            for request in requests:
                kind, key = kind_of(request.item), key_of(request.item)
                open_write = self._open.get(key)
                # a write recovered from the journal (known by its key only) is followed by
                # every kind, so a retried revocation waits for it instead of going again
                if kind in DEDUPED or (open_write is not None and open_write.item is None):
                    if open_write is not None:
                        open_write.requests.append(request)
                        continue
                    if (done := self._recent.get(key)) is not None:
                        request.future.set_result(dc_replace(done, created=False))
                        continue
                write = _Write(key, kind, request.item, [request])
                if kind in DEDUPED:
                    self._open[key] = write
                self._queue.append(write)
        return requests

    def submit(self, item: WriteInput) -> Future[Included]:
        """Queue one write; see :meth:`submit_many`."""
        return self.submit_many([item])[0]

    def write(self, item: WriteInput) -> Included:
        """Write one record and wait until it is on chain; raises its own typed error."""
        result = self.write_many([item])[0]
        if isinstance(result, LedgerError):
            raise result
        return result

    def write_many(
        self, items: Sequence[WriteInput], *, early: bool = False
    ) -> list[Included | LedgerError]:
        """Write several records together and wait for all of them: each is answered with its
        inclusion or its own error, and one bad record never fails the others.

        When no round is being sent, the calling thread sends this one itself (with whatever
        else is queued) instead of handing it to the sender thread and waiting to be woken:
        a lone writer pays for no thread switch, and on the embedded chain its answer is ready
        when the send returns. Writes arriving meanwhile queue for the next round as usual.
        ``early``: answered at inclusion (see :meth:`submit_many`)."""
        futures = [r.future for r in self._enqueue(items, early)]
        batch = self._claim_round()
        if batch is not None:
            self._run_round(batch)
        else:
            with self._lock:
                self._start_sender()
                self._work.notify()
        deadline = time.monotonic() + self.timeout
        results: list[Included | LedgerError] = []
        for future in futures:
            try:
                results.append(future.result(timeout=max(0.0, deadline - time.monotonic())))
            except FutureTimeout:
                waiting = self.waiting_for
                results.append(
                    FeeAboveCeiling(f"not sent within {self.timeout:.0f} s: {waiting}")
                    if waiting is not None
                    else TransactionFailed(
                        f"no receipt within {self.timeout:.0f} s; still in flight"
                    )
                )
            except LedgerError as exc:
                results.append(exc)
        return results

    def recent(self, key: str) -> Included | None:
        """The inclusion of a write-once record this pipeline wrote lately (a bounded memory,
        for answering repeats before the event index has caught up), or None."""
        with self._lock:
            return self._recent.get(key)

    def pending(self, key: str) -> str | None:
        """Where the write of the write-once record ``key`` stands while it is not final
        (queued, sent at nonce N, mined in block B and not final yet), or None when this
        pipeline holds no write for it. Read by the service to say ``pending``."""
        with self._lock:
            write = self._open.get(key)
            if write is None:
                return None
            flight = next((f for f in self._in_flight if write in f.writes), None)
            if flight is None:
                waiting = self.waiting_for
                return "queued" if waiting is None else f"queued ({waiting})"
            if flight.mined_in is not None:
                return f"mined in block {flight.mined_in[0]}, not final yet"
            return f"sent at nonce {flight.nonce}"

    @property
    def waiting(self) -> int:
        """Requests not answered yet (queued, being sent, or in flight)."""
        with self._lock:
            writes = {id(w): w for w in self._queue + self._sending}
            writes.update((id(w), w) for flight in self._in_flight for w in flight.writes)
            return sum(sum(not r.future.done() for r in w.requests) for w in writes.values())

    @property
    def last_block(self) -> int | None:
        """The newest block holding one of this pipeline's writes."""
        return self._last_block

    def wait_for_round(self, timeout: float) -> None:
        """Return once no round is being sent (or after ``timeout`` seconds). A feeder that
        hands writes over in batches (the sender role of :mod:`ledger.writes.shared`, which
        claims them from the database) then hands over what arrived during a round at once,
        as the next round takes it, instead of one claim a write."""
        with self._lock:
            self._work.wait_for(lambda: not self._round_active or self._closed, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new writes, let the queued and in-flight ones finish (up to ``timeout``
        seconds), then stop the threads; what is still waiting is answered with an error."""
        with self._lock:
            self._closed = True
            self._work.notify_all()
            self._sent.notify_all()
            threads = [t for t in (self._sender, self._waiter) if t is not None]
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._lock:
            left = self._queue + [w for flight in self._in_flight for w in flight.writes]
            self._queue = []
        for write in left:
            self._fail(write, ChainUnavailable("the service stopped before this write was mined"))
        if self.journal is not None and not any(t.is_alive() for t in threads):
            self.journal.close()  # a thread still reading receipts keeps it until it exits

    # -- the sender ---------------------------------------------------------------------------

    def _start_sender(self) -> None:
        if self._sender is None:
            self._sender = threading.Thread(target=self._send_loop, name="writes-send", daemon=True)
            self._sender.start()

    def _start_waiter(self) -> None:
        if self._waiter is None:
            self._waiter = threading.Thread(target=self._wait_loop, name="writes-wait", daemon=True)
            self._waiter.start()

    def _claim_round(self) -> list[_Write] | None:
        """Take every queued write for a round, unless a round is being sent already (one at a
        time keeps nonces and gathering simple) or too much is in flight; None then."""
        with self._lock:
            if (
                self._round_active
                or not self._queue
                or len(self._in_flight) >= self.max_in_flight
                or time.monotonic() < self._held_until
            ):
                return None
            self._round_active = True
            batch, self._queue = self._queue, []
            self._sending = batch
            return batch

    def _run_round(self, batch: list[_Write]) -> None:
        """Send one round, whichever thread claimed it, then let the next one start."""
        try:
            self._send_round(batch)
            self.waiting_for = None
        except FeeAboveCeiling as exc:  # nothing signed above the ceiling: wait for a block
            self._hold(batch, exc)
        except LedgerError as exc:  # the node could not be asked for the fees: nothing was sent
            self._fail_unsent(batch, exc)
        except Exception as exc:  # a bug must not leave requests waiting for ever
            log.exception("the write pipeline failed a round")
            self._fail_unsent(batch, TransactionFailed(f"the write failed: {exc}"))
        finally:
            with self._lock:
                self._round_active = False
                self._sending = []
                if self._queue:  # what arrived meanwhile: the sender thread takes it
                    self._start_sender()
                self._work.notify_all()  # and a feeder waits for the round to end

    def _hold(self, batch: list[_Write], exc: FeeAboveCeiling) -> None:
        """The fees are over the ceiling: what was not sent goes back to the head of the queue,
        and no round starts for ``fee_retry`` seconds (then the fees are read again)."""
        with self._lock:
            sent = {id(w) for flight in self._in_flight for w in flight.writes}
            self._queue[:0] = [w for w in batch if id(w) not in sent]
            self._held_until = time.monotonic() + self.fee_retry
            if self.waiting_for is None:
                log.warning("writes wait: %s", exc)
            self.waiting_for = str(exc)

    def _fail_unsent(self, batch: list[_Write], exc: LedgerError) -> None:
        with self._lock:
            sent = {id(w) for flight in self._in_flight for w in flight.writes}
        for write in batch:
            if id(write) not in sent:
                self._fail(write, exc)

    def _send_loop(self) -> None:
        while True:
            with self._lock:
                while (
                    not self._queue
                    or self._round_active
                    or len(self._in_flight) >= self.max_in_flight
                    or (held := self._held_until - time.monotonic()) > 0
                ):
                    held = self._held_until - time.monotonic()
                    if self._closed and (not self._queue or held > 0):
                        self._sender = None
                        return
                    if held > 0 and self._queue:  # wait out the hold, then read the fees again
                        self._work.wait(held)
                        continue
                    if not self._work.wait(self.idle_timeout) and not self._queue:
                        self._sender = None
                        return
            batch = self._claim_round()
            if batch is not None:
                self._run_round(batch)

    def _send_round(self, batch: list[_Write]) -> None:
        block = self._transactor.fee_block()
        for kind in ORDER:
            writes = [w for w in batch if w.kind == kind]
            for chunk in self._chunks(kind, writes, block["gasLimit"]):
                self._send_chunk(kind, chunk, block)

    def _chunks(self, kind: str, writes: list[_Write], gas_limit: int) -> list[list[_Write]]:
        """Writes in order, in chunks whose call fits a block's gas and a pool's size limit
        (:func:`ledger.writes._planning.chunks`)."""
        return chunks(kind, writes, gas_limit)

    def _simulates(self, kind: str) -> bool:
        return self.simulate_registrations or kind not in ("dataset", "model")

    def _send_chunk(self, kind: str, writes: list[_Write], block: Any) -> None:
        if self._simulates(kind):
            writes = self._simulated(kind, writes)
            if not writes:
                return
        call = call_for(kind, [w.item for w in writes])  # type: ignore[misc]
        tx = self.client.transaction(call)
        flight = _InFlight(-1, writes, [], sent_at_block=-1)  # the waiter dates it

        def before_send(signed: SignedTx) -> None:
            # 3. journaled, and known to the waiter, before the node sees it
            if self.journal is not None:
                self.journal.record(signed, [w.key for w in writes])
            with self._lock:
                flight.nonce = signed.nonce
                flight.variants.append(signed)
                self._in_flight.append(flight)

        try:
            signed = self._transactor.broadcast(
                tx, gas=call.gas, block=block, before_send=before_send
            )
        except FeeAboveCeiling:  # nothing was signed: the round holds these writes
            self._unsend(flight)
            raise
        except Exception as exc:  # the node refused it (or never saw it): nothing is in flight
            self._unsend(flight)
            if isinstance(exc, GasLimitExceeded) and len(writes) > 1:  # the limit shrank
                middle = len(writes) // 2
                self._send_chunk(kind, writes[:middle], block)
                self._send_chunk(kind, writes[middle:], block)
                return
            refused = (
                exc
                if isinstance(exc, LedgerError)
                else TransactionFailed(f"the node refused the transaction: {exc}")
            )
            for write in writes:
                self._fail(write, refused)
            return
        if self._instant:  # 4-5. already mined and stored: answer from the receipt now
            try:
                receipt = self._transactor.receipt(signed.tx_hash)
                if receipt is not None:
                    self._included(flight, receipt)
                    return
            except LedgerError as exc:  # the waiter reads it again
                log.warning("reading the receipt of %s: %s", signed.tx_hash, exc)
        with self._lock:
            self._start_waiter()
            self._sent.notify()

    def _unsend(self, flight: _InFlight) -> None:
        """Undo :meth:`_send_chunk`'s registration of a send the node refused."""
        with self._lock:
            if flight in self._in_flight:
                self._in_flight.remove(flight)
        if self.journal is not None:
            for signed in flight.variants:
                self.journal.forget(signed.tx_hash)

    def _simulated(self, kind: str, writes: list[_Write]) -> list[_Write]:
        """2. The writes of a chunk whose simulation passes; the others answered with their
        revert (:func:`ledger.writes._planning.simulated`)."""

        def simulate(survivors: list[_Write]) -> None:
            self.client.simulate(call_for(kind, [w.item for w in survivors]))  # type: ignore[misc]

        return simulated(writes, simulate, self._fail)

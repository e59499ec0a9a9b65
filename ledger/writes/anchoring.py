"""Anchoring prediction receipts in Merkle batches, in the background.

A receipt is written to the receipt book (:mod:`ledger.storage.receipt_book`: SQLite, WAL,
``synchronous=FULL``) before the client sees it, so a receipt a client holds is never lost. The
:class:`Anchorer` thread groups pending receipts by model, builds a StandardMerkleTree over their
leaves and anchors its root with one ``anchorPredictions`` transaction, when ``batch_size`` are
pending or the oldest has waited ``interval`` seconds, whichever comes first. It uses the book
only through :class:`~ledger.storage.receipt_book.ReceiptStore`, so any engine that keeps those
states will do. Every batch due goes to the write pipeline (:mod:`ledger.writes.pipeline`) at once,
so the batches of several models share one ``anchorPredictionBatches`` transaction, and the
service's other writes may share its block; each batch is still answered, and refused, alone.

Under a steady stream of receipts the size trigger would send a transaction every ``batch_size``
receipts; instead two rounds started by size are at least ``ROUND_GAP`` seconds apart (a fifth
of ``interval`` if that is shorter), and a round plans every batch due at once, so one
``anchorPredictionBatches`` transaction carries them all (or as few as the gas limit allows):
a busy service pays for a chain transaction (its simulation, execution, block and receipt, most
of the thread's time) once a round, not once a batch. Batches are still at most ``batch_size``
receipts, and no receipt waits longer than ``interval`` plus one round.

A batch is first *planned* (its root, and each receipt's leaf and proof, written in one
transaction), then sent, then marked *anchored*. After a crash between the two, start-up asks the
chain whether the planned root is anchored, and either records it or sends it again: nothing is
anchored twice and nothing is left behind.

A caller in a hurry (``POST /v1/anchor?wait=included|accepted``) does not change these states:
:meth:`Anchorer.flush_included` answers once the planned batches are in a block and leaves their
marking to the thread, which waits for the same writes (the pipeline follows a write in flight
rather than sending it twice) until they are final; :meth:`Anchorer.plan_now` only plans, durably,
and wakes the thread. A batch is marked *anchored* only once final, so a reorganisation never
leaves the receipt book naming a block that lost the batch.

With several replicas the book is shared (:mod:`ledger.storage.pg_receipt_book`) and the thread
plans and anchors only in the replica that holds the sender role (``may_anchor``), so a receipt
issued by any replica is anchored by the sender; an explicit :meth:`Anchorer.flush` (the
operator's "anchor now") may run in any replica, since planning takes the book's lock and a root
the chain already holds is recorded, not sent again.

A batch is marked *failed* only when the chain refuses it for good (its model was revoked or is
unknown) and does not hold it already. A refusal that may pass (this key lost its role, a
transaction got no receipt in time, the node is away) keeps the batch planned, and the thread
retries it after a pause.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ledger.chain.client import LedgerClient
from ledger.errors import (
    AlreadyRegistered,
    BatchAlreadyAnchored,
    ChainUnavailable,
    InvalidRecord,
    LedgerError,
    RecordIsRevoked,
    UnknownBatch,
    UnknownRecord,
)
from ledger.records import AnchorInput

# ReceiptBook and StoredReceipt live in ledger.storage.receipt_book; they are re-exported here for
# the callers that have always imported them from this module.
from ledger.storage.receipt_book import ReceiptBook, ReceiptStore, StoredReceipt
from ledger.writes.pipeline import Included, WritePipeline

__all__ = ["AnchorResult", "Anchorer", "ReceiptBook", "StoredReceipt"]

log = logging.getLogger("provenance.anchoring")

ROLE_CHECK = 1.0  # seconds between checks of whether this replica may anchor (``may_anchor``)
ROUND_GAP = 1.0  # least seconds between two rounds started by size (see the module docstring)


@dataclass(frozen=True)
class AnchorResult:
    """What one attempt at a batch did: ``state`` is ``anchored``, ``failed`` (for good) or
    ``planned`` (refused for now; retried later), with the ``error`` when it is not anchored."""

    root: str
    model_hash: str
    count: int
    tx_hash: str | None
    block_number: int | None
    error: str | None = None
    state: str = "anchored"


class Anchorer:
    """Anchors pending receipts in the background; :meth:`flush` anchors them right now."""

    def __init__(
        self,
        book: ReceiptStore,
        client: LedgerClient,
        *,
        batch_size: int,
        interval: float,
        writes: WritePipeline | None = None,
        on_anchored: Callable[[AnchorResult], None] | None = None,
        may_anchor: Callable[[], bool] | None = None,
    ) -> None:
        """``writes``: the service's write pipeline; without one the anchorer keeps its own
        (whose threads run only while it sends). ``on_anchored`` hears of every batch this
        anchorer put on chain (it must not raise). ``may_anchor``: whether this process's
        thread may plan and anchor now (with a shared book, only the replica holding the
        sender role does; the others' threads wait, checking every ``ROLE_CHECK`` seconds)."""
        self.book, self.client = book, client
        self.batch_size, self.interval = batch_size, interval
        self._owns_writes = writes is None
        self.writes = writes if writes is not None else WritePipeline(client)
        self._wake = threading.Condition()
        self._stopping = False
        self._flush_lock = threading.Lock()
        self._retry_at = 0.0  # time.monotonic() before which the thread does not retry
        # What the thread last counted pending, and receipts announced since (under _wake).
        self._known_pending = 0
        self._added = 0
        # Before this time.monotonic() a round is not started by size (under _wake).
        self._gap = min(ROUND_GAP, interval / 5)
        self._quiet_until = 0.0
        self._thread: threading.Thread | None = None
        self._on_anchored = on_anchored
        self._may_anchor = may_anchor

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="anchorer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._owns_writes:
            self.writes.close()

    def notify(self, added: int = 0) -> None:
        """``added`` new receipts arrived: wake the thread when they may make a batch due by
        size. The age trigger needs no wake-up (the thread sleeps until the oldest pending
        receipt is due), so a request of a few rows does not cost the thread a count of the
        book. ``added`` 0 (not known) always wakes it."""
        with self._wake:
            self._added += added
            if added == 0 or (
                self._known_pending + self._added >= self.batch_size
                and time.monotonic() >= self._quiet_until
            ):
                self._wake.notify_all()

    def _due_in(self) -> float:
        """Seconds until a batch is due (0: now)."""
        retry_in = self._retry_at - time.monotonic()
        if retry_in > 0:
            return retry_in
        if self._may_anchor is not None and not self._may_anchor():
            return min(self.interval, ROLE_CHECK)  # another replica anchors the shared book
        self._known_pending, self._added = self.book.pending_count(), 0
        if self.book.planned():
            return 0.0
        oldest = self.book.oldest_pending_at()
        if oldest is None:
            return self.interval
        by_age = max(0.0, oldest + self.interval - time.time())
        if self._known_pending >= self.batch_size:  # due by size, once the gap has passed
            return min(by_age, max(0.0, self._quiet_until - time.monotonic()))
        return by_age

    def _run(self) -> None:
        while True:
            with self._wake:
                if self._stopping:
                    return
                delay = self._due_in()
                if delay > 0:
                    self._wake.wait(timeout=delay)
                    continue
            self._quiet_until = time.monotonic() + self._gap
            try:
                results = self.flush()
            except ChainUnavailable as exc:
                log.warning("anchoring postponed: %s", exc)
                self._back_off()
            except Exception:
                log.exception("anchoring failed")
                self._back_off()
            else:
                if any(r.state == "planned" for r in results):
                    self._back_off()  # refused for now: do not hammer the chain

    def _back_off(self) -> None:
        """Wait a while before the next attempt, whatever new receipts arrive meanwhile."""
        self._retry_at = time.monotonic() + min(self.interval, 5.0)

    def flush(self) -> list[AnchorResult]:
        """Plan every pending receipt into batches and anchor every planned batch, all in one
        round of the write pipeline. Raises :class:`ChainUnavailable` (after recording what
        did land) when the node could not be reached for a batch."""
        with self._flush_lock:
            self.book.plan(self.batch_size)
            planned = self.book.planned()
            if not planned:
                return []
            outcomes = self.writes.write_many(
                [AnchorInput(model_hash, root, count) for root, model_hash, count in planned]
            )
            results = [
                self._settle(root, model_hash, count, outcome)
                for (root, model_hash, count), outcome in zip(planned, outcomes, strict=True)
            ]
            unreachable = next((o for o in outcomes if isinstance(o, ChainUnavailable)), None)
            if unreachable is not None:
                raise unreachable
            return results

    def flush_included(self) -> list[AnchorResult]:
        """:meth:`flush`, answered once each batch is in a block (``state`` ``included``, with
        its transaction and block) instead of once it is final. The receipt book marks those
        batches anchored when they are final: the thread, woken here, waits for the same writes
        (followed in flight, not sent again). A refusal is settled at once, as by :meth:`flush`.
        """
        with self._flush_lock:
            self.book.plan(self.batch_size)
            planned = self.book.planned()
            if not planned:
                return []
            outcomes = self.writes.write_many(
                [AnchorInput(model_hash, root, count) for root, model_hash, count in planned],
                early=True,
            )
            results = [
                AnchorResult(root, model_hash, count, o.tx_hash, o.block_number, None, "included")
                if isinstance(o, Included)
                else self._settle(root, model_hash, count, o)
                for (root, model_hash, count), o in zip(planned, outcomes, strict=True)
            ]
        self.notify()  # the thread marks them anchored once final
        unreachable = next((o for o in outcomes if isinstance(o, ChainUnavailable)), None)
        if unreachable is not None:
            raise unreachable
        return results

    def plan_now(self) -> list[tuple[str, str, int]]:
        """Plan every pending receipt into batches and hand them to the write pipeline without
        waiting for the chain; return every planned batch as ``(root, model_hash, count)``.

        The receipt book's plan is the durable queue (a crash after this loses nothing: the
        thread sends planned batches at start-up); queueing them at once makes the pipeline
        say each one is pending from this moment. The thread, woken, marks them anchored once
        final, following the same writes rather than sending them again."""
        with self._flush_lock:
            self.book.plan(self.batch_size)
            planned = self.book.planned()
            if planned:
                self.writes.submit_many(
                    [AnchorInput(model_hash, root, count) for root, model_hash, count in planned]
                )
        if planned:
            self.notify()
        return planned

    def _settle(
        self, root: str, model_hash: str, count: int, outcome: Included | LedgerError
    ) -> AnchorResult:
        """Record what the chain did with one batch (anchored, refused for good, or for now)."""
        if isinstance(outcome, Included):
            self.book.mark_anchored(root, outcome.tx_hash, outcome.block_number)
            result = AnchorResult(root, model_hash, count, outcome.tx_hash, outcome.block_number)
            if self._on_anchored is not None:
                self._on_anchored(result)
            return result
        if isinstance(outcome, BatchAlreadyAnchored):
            # Sent before a crash, or by a previous attempt: record what the chain says.
            return self._record_existing(root, model_hash, count)
        if isinstance(outcome, ChainUnavailable):
            return AnchorResult(root, model_hash, count, None, None, str(outcome), "planned")
        if isinstance(outcome, RecordIsRevoked | UnknownRecord | InvalidRecord | AlreadyRegistered):
            # Refused for good (e.g. its model was revoked meanwhile), unless the batch was sent
            # before a crash and the model revoked only since: then the chain holds it.
            try:
                return self._record_existing(root, model_hash, count)
            except UnknownBatch:
                pass
            log.error("batch %s cannot be anchored: %s", root, outcome)
            self.book.mark_failed(root, str(outcome))
            return AnchorResult(root, model_hash, count, None, None, str(outcome), "failed")
        # Refused for now (this key lost its role, no receipt in time): keep it planned.
        log.warning("batch %s not anchored yet, will retry: %s", root, outcome)
        return AnchorResult(root, model_hash, count, None, None, str(outcome), "planned")

    def _record_existing(self, root: str, model_hash: str, count: int) -> AnchorResult:
        """Record a batch the chain already holds; raises :class:`UnknownBatch` if it does not."""
        event = self.client.batch_anchoring(root)
        if event.model_hash != model_hash or event.count != count:
            error = (
                f"root {root} is anchored on chain for model {event.model_hash} with "
                f"{event.count} receipt(s), not for {model_hash} with {count}"
            )
            log.error("batch %s cannot be anchored: %s", root, error)
            self.book.mark_failed(root, error)
            return AnchorResult(root, model_hash, count, None, None, error, "failed")
        self.book.mark_anchored(root, event.tx_hash, event.block_number)
        return AnchorResult(root, model_hash, count, event.tx_hash, event.block_number)

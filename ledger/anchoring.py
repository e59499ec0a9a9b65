"""Anchoring prediction receipts in Merkle batches, in the background.

A receipt is written to the receipt book (:mod:`ledger.receipt_book`: SQLite, WAL,
``synchronous=FULL``) before the client sees it, so a receipt a client holds is never lost. The
:class:`Anchorer` thread groups pending receipts by model, builds a StandardMerkleTree over their
leaves and anchors its root with one ``anchorPredictions`` transaction, when ``batch_size`` are
pending or the oldest has waited ``interval`` seconds, whichever comes first. It uses the book
only through :class:`~ledger.receipt_book.ReceiptStore`, so any engine that keeps those states
will do.

A batch is first *planned* (its root, and each receipt's leaf and proof, written in one
transaction), then sent, then marked *anchored*. After a crash between the two, start-up asks the
chain whether the planned root is anchored, and either records it or sends it again: nothing is
anchored twice and nothing is left behind.

A batch is marked *failed* only when the chain refuses it for good (its model was revoked or is
unknown) and does not hold it already. A refusal that may pass (this key lost its role, a
transaction got no receipt in time, the node is away) keeps the batch planned, and the thread
retries it after a pause.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from ledger.client import LedgerClient
from ledger.errors import (
    AlreadyRegistered,
    BatchAlreadyAnchored,
    ChainUnavailable,
    InvalidRecord,
    LedgerError,
    RecordRevoked,
    UnknownBatch,
    UnknownRecord,
)

# ReceiptBook and StoredReceipt live in ledger.receipt_book; they are re-exported here for the
# callers that have always imported them from this module.
from ledger.receipt_book import ReceiptBook, ReceiptStore, StoredReceipt

__all__ = ["AnchorResult", "Anchorer", "ReceiptBook", "StoredReceipt"]

log = logging.getLogger("provenance.anchoring")


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
        self, book: ReceiptStore, client: LedgerClient, *, batch_size: int, interval: float
    ) -> None:
        self.book, self.client = book, client
        self.batch_size, self.interval = batch_size, interval
        self._wake = threading.Condition()
        self._stopping = False
        self._flush_lock = threading.Lock()
        self._retry_at = 0.0  # time.monotonic() before which the thread does not retry
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="anchorer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def notify(self) -> None:
        """New receipts arrived: re-check whether a batch is due."""
        with self._wake:
            self._wake.notify_all()

    def _due_in(self) -> float:
        """Seconds until a batch is due (0: now)."""
        retry_in = self._retry_at - time.monotonic()
        if retry_in > 0:
            return retry_in
        if self.book.pending_count() >= self.batch_size or self.book.planned():
            return 0.0
        oldest = self.book.oldest_pending_at()
        if oldest is None:
            return self.interval
        return max(0.0, oldest + self.interval - time.time())

    def _run(self) -> None:
        while True:
            with self._wake:
                if self._stopping:
                    return
                delay = self._due_in()
                if delay > 0:
                    self._wake.wait(timeout=delay)
                    continue
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
        """Plan every pending receipt into batches and anchor every planned batch."""
        with self._flush_lock:
            self.book.plan(self.batch_size)
            return [self._anchor(*batch) for batch in self.book.planned()]

    def _anchor(self, root: str, model_hash: str, count: int) -> AnchorResult:
        try:
            tx = self.client.anchor_predictions(model_hash, root, count)
        except BatchAlreadyAnchored:
            # Sent before a crash, or by a previous attempt: record what the chain says.
            return self._record_existing(root, model_hash, count)
        except ChainUnavailable:
            raise
        except (RecordRevoked, UnknownRecord, InvalidRecord, AlreadyRegistered) as exc:
            # Refused for good (e.g. its model was revoked meanwhile), unless the batch was sent
            # before a crash and the model revoked only since: then the chain holds it.
            try:
                return self._record_existing(root, model_hash, count)
            except UnknownBatch:
                pass
            log.error("batch %s cannot be anchored: %s", root, exc)
            self.book.mark_failed(root, str(exc))
            return AnchorResult(root, model_hash, count, None, None, str(exc), "failed")
        except LedgerError as exc:
            # Refused for now (this key lost its role, no receipt in time): keep it planned.
            log.warning("batch %s not anchored yet, will retry: %s", root, exc)
            return AnchorResult(root, model_hash, count, None, None, str(exc), "planned")
        self.book.mark_anchored(root, tx.tx_hash, tx.block_number)
        return AnchorResult(root, model_hash, count, tx.tx_hash, tx.block_number)

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

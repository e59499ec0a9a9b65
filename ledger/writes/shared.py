"""Several replicas, one sender: the write queue in PostgreSQL (the transactional outbox).

One protocol, kept in one file so its crash-safety argument reads top to bottom (as
``pipeline.py`` does for one process), which is why it runs past 400 lines; the journal's SQL
is apart, in ``_pg_journal.py``.

Every replica takes writes from its clients; one replica at a time sends them, because one key
has one sequence of nonces. The states of a write, and what a crash at each leaves:

1. *queued*: a row of ``write_queue``, written in one transaction with whatever else the
   request's bookkeeping wrote (:meth:`SharedWrites.submit_many`), then a ``NOTIFY``. A
   write-once record has one row whichever replicas ask (``dedup``, its hash): a second
   request follows the first. The row is durable before any client is answered, so a crash of
   the replica that took it loses nothing (its client, answered "accepted", finds it written).
2. *sending*: claimed by the replica holding the **sender role**, stamped with its epoch, and
   handed to its :class:`~ledger.writes.pipeline.WritePipeline`, whose journal is the database's
   (:mod:`ledger.writes._pg_journal`): from here the states of ``pipeline.py`` apply as they
   are (gathered into batch transactions, journaled before the node sees them, re-sent at the
   same nonce, followed through reorganisations).
3. *final* or *failed*: the sender writes the row's outcome (the inclusion, or the typed
   error) in the transaction that marks its nonce done in the journal, and notifies; the
   replica whose client waits reads it and answers (the sender's own replica answers from
   the rows that commit returned, without reading them again). A sender killed before that
   commit leaves the nonce open: the next sender finds it in the journal, reads its receipt,
   and writes the outcome (the same). A refusal (a simulated revert) names no nonce and is
   written at once.

**The sender role** is a session-level PostgreSQL advisory lock on a key derived from the
signing address, held on a dedicated connection: it is released when that session ends, so a
replica killed with ``kill -9`` (its socket closes) or cut from the database loses it at once,
and every other replica tries to take it every ``lock_retry`` seconds. A new holder:

a. bumps the fencing epoch (:func:`~ledger.writes._pg_journal.take_epoch`): from then on a
   journal write of the old holder, which may still be running, is refused, so it can sign and
   send nothing more; anything it journaled before is visible;
b. reads its nonces from the node again, and recovers from the journal exactly as a restarted
   single process does (``WritePipeline.recover``: the same signed bytes re-sent; nothing is
   signed twice at a nonce, no nonce is skipped);
c. claims the rows the old holder left *sending* again and hands them to its pipeline, where a
   row whose transaction came back from the journal follows that transaction instead of being
   sent again;
d. then takes queued rows as they come.

A replica that loses the role (its lock session broke) stops claiming rows at once and lets
its pipeline go (its further journal writes would be refused anyway); outcomes it still
writes are fenced by the rows' epoch.

Receipts are signed by whichever replica serves a prediction; their batches are anchored
through this queue, so by the sender. The embedded chain is one process's own chain and keeps
the single pipeline (``api.engines``): the queue serves RPC chains.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from ledger.chain.client import LedgerClient
from ledger.errors import ChainUnavailable, LedgerError, TransactionFailed
from ledger.storage.postgres import PgConnection, PgConnections, StoreUnavailable
from ledger.writes._codec import (
    error_from_json,
    error_to_json,
    included_from_json,
    included_to_json,
    item_from_json,
    item_to_json,
)
from ledger.writes._items import DEDUPED, Included, WriteInput, key_of, kind_of
from ledger.writes._listener import Listener
from ledger.writes._pg_journal import DONE_CHANNEL, OutcomeBuffer, PgTxJournal, take_epoch
from ledger.writes.pipeline import WritePipeline

__all__ = ["QUEUED_CHANNEL", "SharedWrites", "sender_lock_key"]

log = logging.getLogger("provenance.writes")

QUEUED_CHANNEL = "provenance_writes_queued"  # a replica queued writes: the sender claims them
CLAIM_LIMIT = 1000  # rows claimed at once (a round may hold many)


def _psycopg_error() -> type[Exception]:
    import psycopg

    return psycopg.OperationalError


def _insert(item: WriteInput, text: str, now: float) -> tuple[str, tuple[object, ...]]:
    """The statement queuing ``item`` (``text``, its JSON); it returns the row's id, or
    nothing for a write-once record whose key has a row already."""
    kind, key = kind_of(item), key_of(item)
    if kind not in DEDUPED:
        return (
            "INSERT INTO write_queue (key, kind, item, state, updated_at) "
            "VALUES (?, ?, ?, 'queued', ?) RETURNING id",
            (key, kind, text, now),
        )
    return (
        "INSERT INTO write_queue (key, kind, item, dedup, state, updated_at) "
        "VALUES (?, ?, ?, ?, 'queued', ?) ON CONFLICT (dedup) DO NOTHING RETURNING id",
        (key, kind, text, key, now),
    )


def _existing(
    conn: PgConnection, key: str, text: str, now: float, done: dict[int, str]
) -> tuple[int, bool]:
    """The row of write-once ``key``, queued before: ``(id, whether this request made the
    write)``. Written already, its outcome goes in ``done``; refused before, it is queued again
    with ``text`` (this request tries again); queued or being sent, this request waits for it."""
    row = conn.execute(
        "SELECT id, state, outcome FROM write_queue WHERE dedup = ? FOR UPDATE", (key,)
    ).fetchone()
    if row["state"] == "final":
        done[row["id"]] = row["outcome"]
        return row["id"], False
    again = row["state"] == "failed"
    if again:
        conn.execute(
            "UPDATE write_queue SET state = 'queued', item = ?, epoch = NULL, outcome = NULL, "
            "updated_at = ? WHERE id = ?",
            (text, now, row["id"]),
        )
    return row["id"], again


def sender_lock_key(address: str) -> int:
    """The advisory lock of the sender role for ``address`` (a signed 64-bit integer)."""
    digest = hashlib.sha256(b"provenance-sender:" + address.lower().encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(eq=False)
class _Waiting:
    future: Future[Included]
    created: bool


class SharedWrites:
    """The write pipeline's interface for the service, over the shared queue (see the module
    docstring). ``make_pipeline(journal)`` builds this replica's pipeline whenever it takes the
    sender role."""

    def __init__(
        self,
        client: LedgerClient,
        db: PgConnections,
        make_pipeline: Callable[[PgTxJournal], WritePipeline],
        *,
        timeout: float = 120.0,
        lock_retry: float = 1.0,
        poll_interval: float = 0.25,
    ) -> None:
        self.client = client
        self._db = db
        self._make_pipeline = make_pipeline
        self.timeout = timeout
        self.lock_retry = lock_retry
        self.poll_interval = poll_interval
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self._lock_key = sender_lock_key(client.account.address)
        self._lock = threading.Lock()
        self._waiting: dict[int, list[_Waiting]] = {}
        self._last_block: int | None = None
        self._pipeline: WritePipeline | None = None
        # told of each final successful transaction this replica sends, with its block, as a
        # single process's pipeline tells it (the index records the block from them, so the
        # replicas find it indexed instead of each reading it from the node)
        self.on_included: Callable[[Any, Sequence[Any]], object] | None = None
        self._outcomes = OutcomeBuffer(answered=self._answer_rows)
        self._epoch: int | None = None
        self._closed = threading.Event()
        self._answers = Listener(db.url, DONE_CHANNEL)
        self._answerer = threading.Thread(target=self._answer_loop, name="writes-answer")
        self._role = threading.Thread(target=self._role_loop, name="writes-role")
        self._answerer.daemon = self._role.daemon = True
        self._answerer.start()
        self._role.start()

    # -- the requests' side (every replica) ---------------------------------------------------

    @property
    def journal(self) -> str:
        """Where accepted writes are durable (the service asks whether there is a journal)."""
        return f"the write_queue table of {self._db.path}"

    def submit_many(
        self, items: Sequence[WriteInput], *, early: bool = False
    ) -> list[Future[Included]]:
        """Queue ``items`` in the database (one transaction) and return one future each,
        resolved when the sender writes its outcome. ``early`` is served as final: the row's
        outcome is written once, when the write is final."""
        if self._closed.is_set():
            raise ChainUnavailable("the write queue is closed (the service is stopping)")
        if not items:
            return []
        done: dict[int, str] = {}  # rows final already: their outcomes
        now = time.time()
        texts = [item_to_json(item) for item in items]
        # each item inserted (a new write-once record's row, unless its key is queued already)
        # in one round trip; the notice to the sender is delivered at the commit
        _, inserted = self._db.script(
            [_insert(item, text, now) for item, text in zip(items, texts, strict=True)],
            notify=QUEUED_CHANNEL,
        )
        rows: list[tuple[int, bool] | None] = [
            (got[0]["id"], True) if got else None for got in inserted
        ]
        if None in rows:  # keys queued or written before: where each stands
            with self._db.write(notify=QUEUED_CHANNEL) as conn:
                for position, row in enumerate(rows):
                    if row is None:
                        rows[position] = _existing(
                            conn, key_of(items[position]), texts[position], now, done
                        )
        futures: list[Future[Included]] = []
        with self._lock:
            for row_id, created in rows:  # type: ignore[misc]  # every None was filled
                future: Future[Included] = Future()
                if row_id in done:
                    future.set_result(included_from_json(done[row_id], created=False))
                else:
                    self._waiting.setdefault(row_id, []).append(_Waiting(future, created))
                futures.append(future)
        return futures

    def submit(self, item: WriteInput) -> Future[Included]:
        return self.submit_many([item])[0]

    def accept_many(self, items: Sequence[WriteInput]) -> list[Future[Included]]:
        """Writes answered on acceptance: their rows are durable once this returns."""
        return self.submit_many(items)

    def write(self, item: WriteInput) -> Included:
        result = self.write_many([item])[0]
        if isinstance(result, LedgerError):
            raise result
        return result

    def write_many(
        self, items: Sequence[WriteInput], *, early: bool = False
    ) -> list[Included | LedgerError]:
        """Queue ``items`` and wait for each one's outcome (its inclusion or its own error)."""
        futures = self.submit_many(items, early=early)
        deadline = time.monotonic() + self.timeout
        results: list[Included | LedgerError] = []
        for future in futures:
            try:
                results.append(future.result(timeout=max(0.0, deadline - time.monotonic())))
            except FutureTimeout:
                results.append(
                    TransactionFailed(f"no outcome within {self.timeout:.0f} s; still queued")
                )
            except LedgerError as exc:
                results.append(exc)
        return results

    def recent(self, key: str) -> Included | None:
        """The inclusion of a write-once record written through the queue, by any replica."""
        rows = self._db.query(
            "SELECT outcome FROM write_queue WHERE dedup = ? AND state = 'final'", (key,)
        )
        return included_from_json(rows[0]["outcome"], created=False) if rows else None

    def pending(self, key: str) -> str | None:
        """Where the write of ``key`` stands while it is queued or being sent, or None."""
        pipeline = self._pipeline
        if pipeline is not None and (state := pipeline.pending(key)) is not None:
            return state
        rows = self._db.query(
            "SELECT state FROM write_queue WHERE dedup = ? AND state IN ('queued', 'sending')",
            (key,),
        )
        if not rows:
            return None
        return "queued" if rows[0]["state"] == "queued" else "being sent by the sender replica"

    @property
    def waiting(self) -> int:
        with self._lock:
            return sum(not w.future.done() for ws in self._waiting.values() for w in ws)

    @property
    def last_block(self) -> int | None:
        """The newest block holding a write this replica answered."""
        return self._last_block

    @property
    def waiting_for(self) -> str | None:
        pipeline = self._pipeline
        return None if pipeline is None else pipeline.waiting_for

    @property
    def deepest_reorg(self) -> int:
        pipeline = self._pipeline
        return 0 if pipeline is None else pipeline.deepest_reorg

    @property
    def is_sender(self) -> bool:
        """Whether this replica holds the sender role now."""
        return self._pipeline is not None

    def resend_orphaned(self, tx_hashes: Sequence[str]) -> int:
        """The sender re-sends its journaled transactions of orphaned blocks; another replica
        re-opens them in the journal, where the sender finds them when it next takes over."""
        pipeline = self._pipeline
        if pipeline is not None:
            return pipeline.resend_orphaned(tx_hashes)
        log.warning("final blocks left the chain; the sender replica re-sends its transactions")
        return 0

    def _answer_loop(self) -> None:
        """Read the outcomes of this replica's waiting rows whenever the sender notifies (and
        every ``poll_interval`` regardless, in case a notification was missed). While this
        replica is the sender, the outcomes it commits are its own, answered as they commit
        (:meth:`_answer_rows`): their notifications are let pass, and only the poll reads
        (what an earlier sender answered, say)."""
        while not self._closed.is_set():
            with self._lock:
                ids = list(self._waiting)
            if ids:
                try:
                    self._read_outcomes(ids)
                except StoreUnavailable as exc:
                    log.warning("reading write outcomes: %s", exc)
                except Exception:
                    log.exception("reading write outcomes failed")
            if not self._answers.alive():
                self._answers.revive()
            poll = time.monotonic() + (self.poll_interval if ids else 1.0)
            while (left := poll - time.monotonic()) > 0:
                if self._answers.wait(left) and (self._closed.is_set() or not self.is_sender):
                    break  # another replica's outcomes: read them now (or the close)

    def _read_outcomes(self, ids: list[int]) -> None:
        self._answer_rows(
            self._db.query(
                "SELECT id, state, outcome FROM write_queue WHERE id = ANY(?) "
                "AND state IN ('final', 'failed')",
                (ids,),
            )
        )

    def _answer_rows(self, rows: Sequence[Any]) -> None:
        """Answer this replica's requests waiting for ``rows`` (``id``, ``state``, ``outcome``
        as committed), read by the answer loop or handed over by this replica's own sender
        role as it commits them."""
        for row in rows:
            with self._lock:
                waiting = self._waiting.pop(row["id"], [])
            for request in waiting:
                if row["state"] == "failed":
                    request.future.set_exception(error_from_json(row["outcome"]))
                    continue
                included = included_from_json(row["outcome"], created=request.created)
                self._last_block = max(self._last_block or 0, included.block_number)
                request.future.set_result(included)

    # -- the sender role (one replica at a time) ----------------------------------------------

    def _role_loop(self) -> None:
        listener: Listener | None = None
        while not self._closed.is_set():
            try:
                if listener is None or not listener.alive():
                    listener = Listener(self._db.url, QUEUED_CHANNEL)
                if not listener.try_lock(self._lock_key):
                    self._closed.wait(self.lock_retry)
                    continue
                self._send_while_held(listener)
            except (StoreUnavailable, _psycopg_error()) as exc:  # the database is away
                log.warning("the sender role: the database is away (%s); trying again", exc)
                self._closed.wait(self.lock_retry)
            except Exception:
                log.exception("the sender role failed; trying again")
                self._closed.wait(self.lock_retry)
            finally:
                if self._pipeline is not None:
                    self._step_down(stopping=self._closed.is_set())
            if listener is not None and not listener.alive():
                listener.close()
                listener = None
        if listener is not None:
            listener.close()  # ends the session: the role passes at once

    def _send_while_held(self, listener: Listener) -> None:
        epoch = take_epoch(self._db, self.holder)
        self.client.transactor.forget_nonces()
        pipeline = self._make_pipeline(PgTxJournal(self._db, epoch, self._outcomes))
        pipeline.on_included = self._included  # read when called: set after the role is taken too
        self._epoch, self._pipeline = epoch, pipeline
        log.warning("this replica (%s) holds the sender role, epoch %d", self.holder, epoch)
        recovered = pipeline.recover()
        left = self._claim(epoch, "sending")
        log.warning(
            "sender epoch %d: %d transaction(s) recovered from the journal, %d write(s) "
            "carried on from the previous sender",
            epoch,
            recovered,
            left,
        )
        while not self._closed.is_set() and listener.alive():
            pipeline.wait_for_round(self.poll_interval)  # one claim for what came meanwhile
            self._claim(epoch, "queued")
            self._outcomes.flush(self._db)
            listener.wait(self.poll_interval)
            self._outcomes.flush(self._db)

    def _included(self, block: Any, receipts: Sequence[Any]) -> object:
        hook = self.on_included
        return None if hook is None else hook(block, receipts)

    def _claim(self, epoch: int, state: str) -> int:
        """Take the rows in ``state`` for this epoch and hand them to the pipeline."""
        pipeline = self._pipeline
        assert pipeline is not None
        # a claim lost with a crash of the server is harmless (the rows are queued again and
        # claimed by whoever sends next): no wait for the WAL flush
        _, (rows,) = self._db.script(
            [
                (
                    "UPDATE write_queue SET state = 'sending', epoch = ?, updated_at = ? "
                    "WHERE id IN (SELECT id FROM write_queue WHERE state = ? ORDER BY id "
                    "LIMIT ? FOR UPDATE SKIP LOCKED) RETURNING id, item",
                    (epoch, time.time(), state, CLAIM_LIMIT),
                )
            ],
            wait_for_flush=False,
        )
        rows.sort(key=lambda r: r["id"])
        if not rows:
            return 0
        try:
            futures = pipeline.submit_many([item_from_json(r["item"]) for r in rows])
        except ChainUnavailable:  # the pipeline closed under us (stopping): queued again
            with self._db.write() as conn:
                conn.execute(
                    "UPDATE write_queue SET state = 'queued', epoch = NULL "
                    "WHERE id = ANY(?) AND epoch = ?",
                    ([r["id"] for r in rows], epoch),
                )
            raise
        for row, future in zip(rows, futures, strict=True):
            future.add_done_callback(
                lambda f, row_id=row["id"]: self._write_outcome(row_id, epoch, f)
            )
        return len(rows)

    def _write_outcome(self, row_id: int, epoch: int, future: Future[Included]) -> None:
        """3. The row's outcome, buffered: committed with the journal's mark of its nonce (the
        pipeline answers first, then marks the nonce done), or by the role loop's next flush
        for a refusal. A failure seen by a replica stepping down is not written (its write is
        carried on by the next sender)."""
        exc = future.exception()
        if exc is not None and self._epoch != epoch:
            return
        if exc is None:
            state, outcome = "final", included_to_json(future.result())
        else:
            error = exc if isinstance(exc, LedgerError) else TransactionFailed(str(exc))
            state, outcome = "failed", error_to_json(error)
        self._outcomes.add(row_id, epoch, state, outcome)
        if exc is not None:  # a refusal names no nonce to wait for: written now
            self._outcomes.flush(self._db)

    def _step_down(self, *, stopping: bool = False) -> None:
        """Leave the sender role. Stopping (:meth:`close`): what is in flight may finish for a
        while, its outcomes written with their nonces; what is left is carried on by the next
        sender from the journal. Having lost the lock: at once, and nothing more is written
        (the next sender answers it all again from the journal)."""
        pipeline, self._pipeline, self._epoch = self._pipeline, None, None  # fails not written
        if pipeline is None:
            return
        if stopping:
            pipeline.close(timeout=10.0)
            self._outcomes.flush(self._db)
            return
        self._outcomes.clear()
        log.warning("this replica (%s) no longer holds the sender role", self.holder)
        threading.Thread(target=pipeline.close, kwargs={"timeout": 5.0}, daemon=True).start()

    def _wake_listeners(self) -> None:
        """Notify both channels, so that this replica's threads waiting on them see the close
        now rather than at their next poll (the other replicas wake once and find nothing)."""
        try:
            with self._db.write(notify=QUEUED_CHANNEL) as conn:
                conn.execute("SELECT pg_notify(?, '')", (DONE_CHANNEL,))
        except Exception as exc:  # the database away: the threads see the close at their poll
            log.info("waking the listeners on close: %s", exc)

    def close(self, timeout: float = 30.0) -> None:
        """Stop: the role passes to another replica (what this one had in flight is carried
        on from the journal); requests still waiting here are answered with an error."""
        self._closed.set()
        self._wake_listeners()
        self._role.join(timeout=timeout)  # it steps down (see _step_down) and ends its session
        self._answerer.join(timeout=timeout)
        self._answers.close()
        with self._lock:
            left = [w for ws in self._waiting.values() for w in ws]
            self._waiting.clear()
        for waiting in left:
            if not waiting.future.done():
                waiting.future.set_exception(
                    ChainUnavailable("the service stopped; the write stays queued")
                )

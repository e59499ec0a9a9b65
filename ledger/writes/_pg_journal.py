"""The write journal in PostgreSQL, for the replica holding the sender role
(:mod:`ledger.writes.shared`): the same entries and promises as the SQLite journal
(:mod:`ledger.writes._journal`: a signed transaction is written before the node sees it, its
block noted once mined, its nonce marked done once final), in tables every replica reads, so
that the next sender carries on from it after the holder dies.

One thing more than the SQLite file: **fencing**. Only the holder of the sender role may sign
and journal a transaction. Each holder gets an *epoch* (the ``sender`` row, bumped when it takes
the role) and every :meth:`PgTxJournal.record` checks it in the same transaction, under a share
lock on that row: a replica that lost the role (its lock session died while it went on
running) has its next journal write refused with :class:`NotSender`, so its pipeline never
hands the node a transaction the new holder does not know. The new holder bumps the epoch
(waiting for any such write in progress to commit) *before* it reads the journal, so whatever
an old holder journaled is read, and whatever it journals afterwards is refused. The journal's
hot writes (a transaction recorded, a nonce done with its outcomes) are one round trip each:
their statements carry the fence as a condition (:data:`HOLDS_ROLE`), so a refused one changes
nothing though it commits (:meth:`PgTxJournal._fenced_script`).

The "accepted" part of the SQLite journal is not needed here: a write answered on acceptance is
a row of the shared queue, durable before the answer (:meth:`SharedWrites.accept_many`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import chain

from ledger.chain._transactor import SignedTx
from ledger.errors import ChainUnavailable
from ledger.storage.postgres import PgConnection, PgConnections
from ledger.writes._journal import KEEP_DONE, JournalEntry

__all__ = ["DONE_CHANNEL", "NotSender", "OutcomeBuffer", "PgTxJournal", "take_epoch"]

# Read first in every fenced transaction, its share lock held to the commit: the epoch
# cannot pass while the transaction runs, so a statement conditioned on HOLDS_ROLE (its one
# parameter, the journal's epoch) changes nothing unless the fence holds.
FENCE = "SELECT epoch FROM sender WHERE id = 1 FOR SHARE"
HOLDS_ROLE = "(SELECT epoch FROM sender WHERE id = 1) = ?::bigint"
DONE_CHANNEL = "provenance_writes_done"  # the sender wrote outcomes: the replicas read them
# Done nonces older than KEEP_DONE are deleted when a nonce that is a multiple of this is done:
# two statements (round trips) a transaction saved, at most this many more rows kept.
PRUNE_EVERY = 64


class NotSender(ChainUnavailable):
    """This replica no longer holds the sender role: it must not sign or send anything."""

    hint = "another replica sends the writes now; this one's are carried on from the journal"


def take_epoch(db: PgConnections, holder: str) -> int:
    """Become the journal's writer: bump the fencing epoch (waiting for a journal write of the
    previous holder in progress) and return the new one."""
    import time

    with db.write() as conn:
        row = conn.execute(
            "INSERT INTO sender (id, epoch, holder, since) VALUES (1, 1, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET epoch = sender.epoch + 1, holder = excluded.holder, "
            "since = excluded.since RETURNING epoch",
            (holder, time.time()),
        ).fetchone()
    return int(row["epoch"])


class OutcomeBuffer:
    """Outcomes of queue rows the sender answered (``(row id, epoch, state, outcome JSON)``),
    written together: with the next journal transaction that marks a nonce done, so a row's
    outcome is committed no later than its nonce (a sender killed in between leaves the nonce
    open, and the next sender answers the row again), and otherwise by :meth:`flush` (a refusal
    names no nonce). One commit for a whole transaction's rows instead of one each."""

    def __init__(self, answered: Callable[[list[dict]], object] | None = None) -> None:
        self._items: list[tuple[int, int, str, str]] = []
        self._lock = threading.Lock()
        # told the rows (``id``, ``state``, ``outcome``) whose outcomes were just committed:
        # the sender answers its own replica's requests without a round trip for them
        self._answered = answered

    def add(self, row_id: int, epoch: int, state: str, outcome: str) -> None:
        with self._lock:
            self._items.append((row_id, epoch, state, outcome))

    def take(self) -> list[tuple[int, int, str, str]]:
        with self._lock:
            items, self._items = self._items, []
        return items

    def put_back(self, items: list[tuple[int, int, str, str]]) -> None:
        with self._lock:
            self._items[:0] = items

    def clear(self) -> None:
        self.take()

    @staticmethod
    def statement(items: list[tuple[int, int, str, str]]) -> tuple[str, tuple[object, ...]]:
        """Each row's outcome (one statement for them all), if it is still this epoch's and
        being sent and the epoch still holds the sender role. The last condition is the fence:
        a replica that lost the role sees its writes refused (:class:`NotSender`) before the
        next holder claims its rows, and that refusal must not become their outcome (the next
        holder sends them). Its transaction notifies :data:`DONE_CHANNEL`, so the replicas
        waiting for the rows read them; it returns the rows it wrote."""
        rows = ", ".join(["(?::bigint, ?::bigint, ?, ?)"] * len(items))
        return (
            "UPDATE write_queue AS q SET state = v.state, outcome = v.outcome, updated_at = ? "
            f"FROM (VALUES {rows}) AS v (id, epoch, state, outcome) "
            "WHERE q.id = v.id AND q.epoch = v.epoch AND q.state = 'sending' "
            "AND q.epoch = (SELECT epoch FROM sender WHERE id = 1) "
            "RETURNING q.id, q.state, q.outcome",
            (time.time(), *chain.from_iterable(items)),
        )

    def written(self, rows: list[dict]) -> None:
        """``rows`` (``id``, ``state``, ``outcome``) were committed: tell whoever answers."""
        if rows and self._answered is not None:
            self._answered(rows)

    def flush(self, db: PgConnections) -> bool:
        """Write what is buffered now; False (and kept) while the database is away."""
        from ledger.storage.postgres import StoreUnavailable

        items = self.take()
        if not items:
            return True
        try:
            _, (rows,) = db.script([self.statement(items)], notify=DONE_CHANNEL)
        except StoreUnavailable:
            self.put_back(items)
            return False
        self.written(rows)
        return True


class PgTxJournal:
    """:class:`~ledger.writes._journal.TxJournal`'s interface on the shared database, fenced by
    ``epoch`` (see the module docstring)."""

    def __init__(
        self, db: PgConnections, epoch: int, outcomes: OutcomeBuffer | None = None
    ) -> None:
        self._db = db
        self.epoch = epoch
        self.outcomes = outcomes
        self.path = db.path

    def _fenced_script(
        self,
        statements: list[tuple[str, Sequence[object]]],
        *,
        wait_for_flush: bool = True,
        notify: str | None = None,
    ) -> list[list[dict]]:
        """:meth:`_fenced` in one round trip: the statements, each written to change nothing
        unless the sender's epoch is this journal's (:data:`HOLDS_ROLE` with this epoch for
        its parameter), run in one transaction under the same share lock; if the epoch had
        passed, nothing changed and :class:`NotSender` is raised."""
        opening, sets = self._db.script(
            statements, wait_for_flush=wait_for_flush, notify=notify, first=FENCE
        )
        self._check_epoch(opening)
        return sets

    def _check_epoch(self, opening_rows: list[dict]) -> None:
        row = opening_rows[0] if opening_rows else None
        if row is None or row["epoch"] != self.epoch:
            raise NotSender(
                f"the sender role passed to epoch {None if row is None else row['epoch']}; "
                f"this replica held epoch {self.epoch}"
            )

    @contextmanager
    def _fenced(
        self, *, wait_for_flush: bool = True, notify: str | None = None
    ) -> Iterator[PgConnection]:
        """A write transaction that goes ahead only while this journal's epoch is the
        sender's: every change of the journal is the holder's alone (a nonce marked done by a
        replica that lost the role would hide from the next holder a write whose outcome was
        not written)."""
        with self._db.write(wait_for_flush=wait_for_flush, notify=notify, first=FENCE) as conn:
            self._check_epoch(conn.opening_rows)
            yield conn

    def record(self, signed: SignedTx, keys: Sequence[str]) -> None:
        """Write one variant, durably, before it is broadcast; :class:`NotSender` when another
        replica has taken the sender role since this one did."""
        insert = (
            "INSERT INTO tx_sent (tx_hash, nonce, to_address, data, gas, max_fee, priority_fee, "
            "raw, keys) SELECT ?, ?::bigint, ?, ?, ?::bigint, ?::numeric, ?::numeric, "
            f"?::bytea, ? WHERE {HOLDS_ROLE} ON CONFLICT (tx_hash) DO NOTHING"
        )
        params = (
            signed.tx_hash,
            signed.nonce,
            signed.tx["to"],
            signed.tx["data"],
            signed.gas,
            signed.max_fee,
            signed.priority_fee,
            signed.raw,
            json.dumps(list(keys)),
            self.epoch,
        )
        self._fenced_script([(insert, params)])

    def included(self, nonce: int, block_number: int, block_hash: str) -> None:
        with self._fenced() as conn:
            conn.execute(
                "INSERT INTO tx_marks (nonce, done, block_number, block_hash) "
                "VALUES (?, FALSE, ?, ?) ON CONFLICT (nonce) DO UPDATE SET done = FALSE, "
                "block_number = excluded.block_number, block_hash = excluded.block_hash",
                (nonce, block_number, block_hash),
            )

    def done(self, nonce: int) -> None:
        """Mark ``nonce`` done, in one transaction with the buffered outcomes of the rows the
        sender answered (see :class:`OutcomeBuffer`)."""
        items = [] if self.outcomes is None else self.outcomes.take()
        try:
            self._done(nonce, items)
        except BaseException:
            if self.outcomes is not None:
                self.outcomes.put_back(items)
            raise

    def _done(self, nonce: int, items: list[tuple[int, int, str, str]]) -> None:
        # Not waiting for the WAL flush: a crash of the server that loses this commit loses
        # the outcomes and the mark together, so the next sender re-reads the nonce's receipt
        # and writes the same outcomes again (facts of the chain).
        statements: list[tuple[str, Sequence[object]]] = []
        if items:
            statements.append(OutcomeBuffer.statement(items))
        statements.append(
            (
                "INSERT INTO tx_marks (nonce, done) SELECT ?::bigint, TRUE "
                f"WHERE {HOLDS_ROLE} ON CONFLICT (nonce) "
                "DO UPDATE SET done = TRUE, block_number = NULL, block_hash = NULL",
                (nonce, self.epoch),
            )
        )
        if nonce % PRUNE_EVERY == 0:
            old = nonce - KEEP_DONE
            statements += [
                (
                    "DELETE FROM tx_sent WHERE nonce < ? AND nonce IN "
                    f"(SELECT nonce FROM tx_marks WHERE done) AND {HOLDS_ROLE}",
                    (old, self.epoch),
                ),
                (
                    f"DELETE FROM tx_marks WHERE nonce < ? AND done AND {HOLDS_ROLE}",
                    (old, self.epoch),
                ),
            ]
        sets = self._fenced_script(
            statements, wait_for_flush=False, notify=DONE_CHANNEL if items else None
        )
        if items and self.outcomes is not None:
            self.outcomes.written(sets[0])

    def reopen(self, tx_hash: str) -> JournalEntry | None:
        with self._fenced() as conn:
            row = conn.execute("SELECT nonce FROM tx_sent WHERE tx_hash = ?", (tx_hash,)).fetchone()
            if row is None:
                return None
            conn.execute("DELETE FROM tx_marks WHERE nonce = ?", (row["nonce"],))
        return next((e for e in self.entries() if e.nonce == row["nonce"]), None)

    def newest_at(self, nonce: int) -> str | None:
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT tx_hash FROM tx_sent WHERE nonce = ? ORDER BY max_fee DESC, seq DESC "
                "LIMIT 1",
                (nonce,),
            ).fetchone()
        return None if row is None else row["tx_hash"]

    def accept(self, items: Sequence[tuple[str, str, str]]) -> None:
        raise NotImplementedError("accepted writes are rows of the shared queue")

    def accepted(self) -> list[tuple[str, str, str]]:
        return []  # see the module docstring

    def settle(self, keys: Sequence[str]) -> None:
        return None

    def forget(self, tx_hash: str) -> None:
        with self._fenced() as conn:
            conn.execute("DELETE FROM tx_sent WHERE tx_hash = ?", (tx_hash,))

    def entries(self) -> list[JournalEntry]:
        """Every nonce not done, in nonce order."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT s.tx_hash, s.nonce, s.to_address, s.data, s.gas, s.max_fee, "
                "s.priority_fee, s.raw, s.keys FROM tx_sent s LEFT JOIN tx_marks m "
                "ON m.nonce = s.nonce WHERE m.done IS NULL OR NOT m.done "
                "ORDER BY s.nonce, s.max_fee, s.seq"
            ).fetchall()
            marks = {
                r["nonce"]: (r["block_number"], r["block_hash"])
                for r in conn.execute(
                    "SELECT nonce, block_number, block_hash FROM tx_marks WHERE NOT done"
                )
            }
        grouped: dict[int, list[dict]] = {}
        for row in rows:
            grouped.setdefault(row["nonce"], []).append(row)
        entries = []
        for nonce, group in grouped.items():
            variants = tuple(
                SignedTx(
                    tx={"to": r["to_address"], "data": r["data"]},
                    gas=r["gas"],
                    nonce=nonce,
                    max_fee=int(r["max_fee"]),
                    priority_fee=int(r["priority_fee"]),
                    tx_hash=r["tx_hash"],
                    raw=bytes(r["raw"]),
                )
                for r in group
            )
            number, block = marks.get(nonce, (None, None))
            keys = tuple(json.loads(group[-1]["keys"]))
            entries.append(JournalEntry(nonce, variants, keys, number, block))
        return entries

    def close(self) -> None:
        return None  # the pool is the service's

"""Streams' durable state, in one SQLite file of the data directory (``streams.sqlite3``).

What it keeps: each stream's definition; every reading accepted (its id, arrival time and
values); the dead letters with their reasons; each chunk's range of readings and its seal.
Every write is one transaction in WAL mode with ``synchronous = FULL``: a reading is
acknowledged (HTTP 202, MQTT PUBACK) only after the transaction holding it has committed, so
a power cut or a kill -9 never loses an acknowledged reading. ``UNIQUE(stream, id)`` stores a
redelivered or resent reading once.

A seal's states (``chunks.state``), so that a crash at any line is safe:

1. ``planned``: the oldest unsealed readings are chosen (on a read snapshot: see
   :meth:`StreamStore.plan`) and one transaction writes down the chunk:
   its number and the range of ``seq`` it covers (``first_seq``..``last_seq``; a reading's row
   in the chunk is its place in that range, among its stream's readings). Nothing is on chain
   yet. (Stores written before issue 27's last change instead gave each reading its chunk and
   row, one ``UPDATE`` a reading, a third of a seal's time; those chunks have no range and are
   still read by those columns. A reading's ``chunk`` is NULL now until then.)
2. (outside this module) the chunk's CSV, rebuilt from those rows (same bytes every time), and
   the version's manifest are registered; both registrations answer the existing record when
   redone, so redoing them is harmless.
3. ``sealed``: the hashes are written down. At start, every ``planned`` chunk is redone from 2.

Two processes write it: the service (streams, HTTP readings, seals) and the MQTT worker
(readings; :mod:`api.streaming.mqtt_worker`). They take turns by a lock file beside the store
(``streams.sqlite3.write-lock``, ``flock``, let go by the kernel when a process dies, even by
kill -9): a write waiting on it goes on as soon as the other process's transaction ends,
where SQLite's own busy handler sleeps up to 100 ms at a time before it tries again (issue 27:
ingest paired with and without it, 2-11% faster). SQLite's wait of up to :data:`BUSY_SECONDS`
stays for anything else that writes the file (the worker's transactions hold at most about
10,000 readings, and it leaves gaps between them while it acknowledges and gathers the next).
In a process, writes go through one connection guarded by a lock, served in arrival order
(:class:`_FairLock`): with a plain lock a writer that takes it again as soon as it lets it go
starved the sealer under a steady stream (seals fell minutes behind the readings). Reads do not
take that lock: each takes a reading connection of a small pool, which WAL lets read a
committed snapshot while a write is under way (issue 27: the sealer's reads, and the stream
pages' figures, waited behind the MQTT writer's transactions of up to 50,000 readings, and the
seals fell behind the readings by up to 90,000 however fast the chain was).

Why it runs past 400 lines: the seal's states above and the readings' acknowledgement are one
crash-safety argument over one schema, which reads best in one file.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.storage.multirow import multi_row_inserts

__all__ = ["BUSY_SECONDS", "ChunkRow", "DeadLetter", "StreamRow", "StreamStore"]

# How long a write waits for the other process's (the MQTT worker's, or the service's) before
# it fails: SQLite's busy handler, which retries with sleeps of 1 ms growing to 100 ms.
BUSY_SECONDS = 60.0

# Readings go in by multi-row statements (ledger.storage.multirow): ``?1`` the stream, then
# three values a row.
_INSERT_READINGS = "INSERT OR IGNORE INTO readings (stream, id, received_at, row) VALUES "

# A chunk's readings: those of its seq range that no older chunk took (``chunk IS NULL``), or
# for a chunk planned by an earlier version of this file, those it numbered
_IN_RANGE = "stream = ? AND chunk IS NULL AND seq BETWEEN ? AND ? ORDER BY seq"
_NUMBERED = "stream = ? AND chunk = ? ORDER BY position"
# The readings of a stream (twice: ``?`` ``?``) in no chunk yet: past the last chunk's range
_WAITING = (
    "stream = ? AND chunk IS NULL AND seq > "
    "(SELECT coalesce(max(last_seq), 0) FROM chunks WHERE stream = ?)"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    name TEXT PRIMARY KEY,
    columns TEXT NOT NULL,
    seal_readings INTEGER NOT NULL,
    seal_seconds REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS readings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    row TEXT NOT NULL,
    chunk INTEGER,
    position INTEGER,
    UNIQUE (stream, id)
);
CREATE INDEX IF NOT EXISTS readings_by_chunk ON readings (stream, chunk, seq);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    source TEXT NOT NULL,
    payload TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_by_stream ON dead_letters (stream, seq);
CREATE TABLE IF NOT EXISTS chunks (
    stream TEXT NOT NULL,
    number INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('planned', 'sealed')),
    count INTEGER NOT NULL,
    first_row INTEGER NOT NULL,
    first_received INTEGER NOT NULL,
    last_received INTEGER NOT NULL,
    planned_at REAL NOT NULL,
    sealed_at REAL,
    content_hash TEXT,
    rows_root TEXT,
    version_hash TEXT,
    version_rows_root TEXT,
    first_seq INTEGER,
    last_seq INTEGER,
    PRIMARY KEY (stream, number)
);
CREATE INDEX IF NOT EXISTS chunks_by_version ON chunks (version_hash);
CREATE TABLE IF NOT EXISTS totals (
    stream TEXT PRIMARY KEY,
    readings INTEGER NOT NULL,
    last_received INTEGER
);
"""


@dataclass(frozen=True)
class StreamRow:
    name: str
    columns: list[dict[str, str]]
    seal_readings: int
    seal_seconds: float
    created_at: float


@dataclass(frozen=True)
class ChunkRow:
    """One seal: chunk ``number`` (from 1) of a stream, and the version it made."""

    stream: str
    number: int
    state: str
    count: int
    first_row: int  # the version row where this chunk starts
    first_received: int
    last_received: int
    planned_at: float
    sealed_at: float | None
    content_hash: str | None
    rows_root: str | None
    version_hash: str | None
    version_rows_root: str | None
    first_seq: int | None = None  # the readings' seq range (None: a chunk planned before it)
    last_seq: int | None = None

    @property
    def readings_total(self) -> int:
        return self.first_row + self.count


@dataclass(frozen=True)
class DeadLetter:
    seq: int
    received_at: int
    source: str
    payload: str
    reason: str


class _FairLock:
    """A lock handed over in the order it was asked for (a ticket lock)."""

    def __init__(self) -> None:
        self._turn = threading.Condition(threading.Lock())
        self._next = 0
        self._serving = 0

    def __enter__(self) -> None:
        with self._turn:
            ticket = self._next
            self._next += 1
            while ticket != self._serving:
                self._turn.wait()

    def __exit__(self, *exc: object) -> None:
        with self._turn:
            self._serving += 1
            self._turn.notify_all()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class StreamStore:
    """The streams' SQLite file (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(
            path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.executescript(_SCHEMA)
        self._lock = _FairLock()
        self._lock_fd = os.open(f"{path}.write-lock", os.O_RDWR | os.O_CREAT, 0o600)
        self.path = path
        self._idle: list[sqlite3.Connection] = []  # reading connections not in use
        with self._write() as conn:
            _add_seq_ranges(conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            os.close(self._lock_fd)
        while self._idle:
            self._idle.pop().close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One statement in its own read transaction, on a reading connection of the pool (a
        committed snapshot; fetched whole, so the snapshot ends with it and never holds back a
        checkpoint)."""
        try:
            reader = self._idle.pop()  # atomic: no two threads get the same connection
        except IndexError:
            reader = sqlite3.connect(
                self.path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False
            )
            reader.execute("PRAGMA query_only = ON")
        try:
            return reader.execute(sql, params).fetchall()
        finally:
            self._idle.append(reader)

    # -- streams -------------------------------------------------------------------------------

    def create(self, row: StreamRow) -> StreamRow:
        """Store ``row``, or answer the stream stored under its name (the caller compares)."""
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO streams VALUES (?, ?, ?, ?, ?)",
                (row.name, json.dumps(row.columns), row.seal_readings, row.seal_seconds,
                 row.created_at),
            )  # fmt: skip
        stored = self.stream(row.name)
        assert stored is not None
        return stored

    def stream(self, name: str) -> StreamRow | None:
        rows = self._read("SELECT * FROM streams WHERE name = ?", (name,))
        return _stream(rows[0]) if rows else None

    def streams(self, *, offset: int, limit: int) -> tuple[list[StreamRow], int]:
        rows = self._read("SELECT * FROM streams ORDER BY name LIMIT ? OFFSET ?", (limit, offset))
        (count,) = self._read("SELECT count(*) FROM streams")[0]
        return [_stream(r) for r in rows], count

    def all_streams(self) -> list[StreamRow]:
        return [_stream(r) for r in self._read("SELECT * FROM streams ORDER BY name")]

    # -- readings and dead letters -------------------------------------------------------------

    def add(
        self,
        stream: str,
        readings: Sequence[tuple[str, int, str]],
        dead: Sequence[tuple[int, str, str, str]] = (),
    ) -> int:
        """:meth:`add_many` for one stream."""
        return self.add_many([(stream, readings, dead)])[0]

    def add_many(
        self,
        batches: Sequence[
            tuple[str, Sequence[tuple[str, int, str]], Sequence[tuple[int, str, str, str]]]
        ],
    ) -> list[int]:
        """Store, per stream, readings (id, received_at ms, row JSON) and dead letters
        (received_at, source, payload, reason), all in one committed transaction; answers per
        stream how many readings were new (the rest had an id seen before)."""
        added = []
        with self._write() as conn:
            for stream, readings, dead in batches:
                before = conn.total_changes
                for statement, values in multi_row_inserts(
                    _INSERT_READINGS, "(?1, ?, ?, ?)", readings, shared=(stream,)
                ):
                    conn.execute(statement, values)
                count = conn.total_changes - before
                added.append(count)
                if count:
                    conn.execute(
                        "INSERT INTO totals VALUES (?, ?, ?) ON CONFLICT (stream) DO UPDATE SET "
                        "readings = readings + excluded.readings, "
                        "last_received = max(coalesce(last_received, 0), excluded.last_received)",
                        (stream, count, max(r[1] for r in readings)),
                    )
                if dead:
                    conn.executemany(
                        "INSERT INTO dead_letters (stream, received_at, source, payload, reason) "
                        "VALUES (?, ?, ?, ?, ?)",
                        [(stream, *d) for d in dead],
                    )
        return added

    def pending(self, stream: str, *, upto: int) -> tuple[int, int | None]:
        """Unsealed readings of ``stream`` not yet in a chunk: how many (counted up to ``upto``
        only, so a backlog never makes this slow), and the oldest one's arrival (ms)."""
        (count,) = self._read(
            f"SELECT count(*) FROM (SELECT 1 FROM readings WHERE {_WAITING} LIMIT ?)",
            (stream, stream, upto),
        )[0]
        oldest = self._read(
            f"SELECT received_at FROM readings WHERE {_WAITING} ORDER BY seq LIMIT 1",
            (stream, stream),
        )
        return count, oldest[0][0] if oldest else None

    def counts(self, stream: str) -> dict[str, Any]:
        """Figures for a stream's page (readings, waiting, dead letters, last arrival), from
        the running totals and the chunks: none of them scans the readings."""
        total = self._read("SELECT readings, last_received FROM totals WHERE stream = ?", (stream,))
        readings, last_received = total[0] if total else (0, None)
        (chunked, planned) = self._read(
            "SELECT coalesce(max(first_row + count), 0), "
            "coalesce(sum(CASE WHEN state = 'planned' THEN count ELSE 0 END), 0) "
            "FROM chunks WHERE stream = ?",
            (stream,),
        )[0]
        (dead,) = self._read("SELECT count(*) FROM dead_letters WHERE stream = ?", (stream,))[0]
        return {
            "readings": readings,
            "pending": readings - chunked + planned,  # a planned chunk is not sealed yet
            "dead_letters": dead,
            "last_received": last_received,
        }

    def reading(self, stream: str, reading_id: str) -> tuple[int, int | None, int | None] | None:
        """A reading's arrival (ms), chunk and row in it (None while in no chunk)."""
        rows = self._read(
            "SELECT seq, received_at, chunk, position FROM readings WHERE stream = ? AND id = ?",
            (stream, reading_id),
        )
        if not rows:
            return None
        seq, received_at, number, position = rows[0]
        if number is not None:  # numbered by an earlier version of this file
            return received_at, number, position
        found = self._read(
            "SELECT number, first_seq FROM chunks WHERE stream = ? AND first_seq <= ? "
            "AND last_seq >= ?",
            (stream, seq, seq),
        )
        if not found:
            return received_at, None, None
        number, first_seq = found[0]
        (position,) = self._read(
            "SELECT count(*) FROM readings WHERE stream = ? AND chunk IS NULL "
            "AND seq >= ? AND seq < ?",
            (stream, first_seq, seq),
        )[0]
        return received_at, number, position

    def dead_letters(self, stream: str, *, offset: int, limit: int) -> tuple[list[DeadLetter], int]:
        rows = self._read(
            "SELECT seq, received_at, source, payload, reason FROM dead_letters "
            "WHERE stream = ? ORDER BY seq DESC LIMIT ? OFFSET ?",
            (stream, limit, offset),
        )
        (count,) = self._read("SELECT count(*) FROM dead_letters WHERE stream = ?", (stream,))[0]
        return [DeadLetter(*r) for r in rows], count

    # -- seals ---------------------------------------------------------------------------------

    def plan(self, stream: str, most: int) -> ChunkRow | None:
        """State 1: the next chunk of at most ``most`` unsealed readings (oldest first), or None
        when none is waiting. A chunk planned before and not yet sealed is answered first.

        The chunk is chosen on a read snapshot, outside the write lock; the write only adds its
        row, once it has checked that no chunk was added meanwhile (else it chooses again).
        That is safe because a reading's ``seq`` follows the order of the commits: writes take
        turns, so a reading committed after the snapshot has a larger ``seq`` than any it holds
        and cannot fall inside the chosen range. (Issue 27: the choice, a read of up to
        ``most`` readings, held the lock the MQTT worker's writes wait for.)"""
        while True:
            planned = self._read(
                "SELECT * FROM chunks WHERE stream = ? AND state = 'planned' ORDER BY number "
                "LIMIT 1",
                (stream,),
            )
            if planned:
                return ChunkRow(*planned[0])
            last = self._read(
                "SELECT number, first_row + count FROM chunks WHERE stream = ? "
                "ORDER BY number DESC LIMIT 1",
                (stream,),
            )
            number, first_row = (last[0][0] + 1, last[0][1]) if last else (1, 0)
            # The chunk is a range of seq: nothing is written a reading (issue 27: numbering
            # each reading was a third of a seal's time)
            count, first_seq, last_seq, first_received, last_received = self._read(
                "SELECT count(*), min(seq), max(seq), min(received_at), max(received_at) "
                f"FROM (SELECT seq, received_at FROM readings WHERE {_WAITING} ORDER BY seq "
                "LIMIT ?)",
                (stream, stream, most),
            )[0]
            if not count:
                return None
            row = (stream, number, "planned", count, first_row, first_received,
                   last_received, time.time(), None, None, None, None, None, first_seq,
                   last_seq)  # fmt: skip
            with self._write() as conn:
                (newest,) = conn.execute(
                    "SELECT coalesce(max(number), 0) FROM chunks WHERE stream = ?", (stream,)
                ).fetchone()
                if newest == number - 1:
                    conn.execute(f"INSERT INTO chunks VALUES ({', '.join('?' * len(row))})", row)
                    return ChunkRow(*row)

    def chunk_rows(self, stream: str, number: int) -> list[tuple[int, str]]:
        """The readings of a chunk, in their order: (received_at, values as a JSON array, as
        stored).

        Read in one step of SQLite, all three columns concatenated (a stored row is compact
        JSON: no raw line feed), not a step a reading: each step gives up the GIL, and a
        chunk of 10,000 readings read row by row handed it over 10,000 times to the MQTT
        connections' threads. The seqs come along to check the order (a subquery's ORDER BY is
        kept under an aggregate, but the check costs little); anything amiss, or a chunk
        longer than SQLite's longest string, and the rows are read one by one."""
        where, params = self._chunk_where(stream, number)
        read = self._concatenated(
            "group_concat(received_at), group_concat(row, char(10))", where, params
        )
        if read is not None:
            count, (times, texts) = read
            rows = texts.split("\n")
            if len(rows) == count:
                return list(zip(map(int, times.split(",")), rows, strict=True))
        return self._read(f"SELECT received_at, row FROM readings WHERE {where}", params)

    def chunk_text(self, stream: str, number: int) -> str | None:
        """The readings of a chunk as text, in their order, a line each: its arrival (ms), a
        comma, then its values' JSON array without the brackets. For a stream without string
        columns that is the chunk file's body (see
        :func:`api.streaming.rows.chunk_csv_stored`), made by SQLite in one step: the file of
        10,000 readings in 8.0 ms, where reading the rows and writing it in Python took 9.5
        (``python -m bench.streams_steps``). None when it cannot be read so (a row holding a
        line feed, rows out of order, a chunk longer than SQLite's longest string):
        :meth:`chunk_rows` reads those."""
        where, params = self._chunk_where(stream, number)
        read = self._concatenated(
            "group_concat(received_at || ',' || substr(row, 2, length(row) - 2), char(10))",
            where,
            params,
        )
        if read is None:
            return None
        count, (text,) = read
        return text if text.count("\n") == count - 1 else None

    def _chunk_where(self, stream: str, number: int) -> tuple[str, tuple[Any, ...]]:
        """Where a chunk's readings are: its range of seq, or (planned before ranges) their
        chunk number."""
        ranges = self._read(
            "SELECT first_seq, last_seq FROM chunks WHERE stream = ? AND number = ?",
            (stream, number),
        )
        first_seq, last_seq = ranges[0] if ranges else (None, None)
        if first_seq is None:
            return _NUMBERED, (stream, number)
        return _IN_RANGE, (stream, first_seq, last_seq)

    def _concatenated(
        self, aggregates: str, where: str, params: tuple[Any, ...]
    ) -> tuple[int, tuple[str, ...]] | None:
        """``count(*)`` and ``aggregates`` (group_concat over the readings ``where`` says, in
        its order), in one step: None when there are none, when the seqs came out of order,
        or when a result is longer than SQLite's longest string."""
        try:
            count, seqs, *texts = self._read(
                f"SELECT count(*), group_concat(seq), {aggregates} FROM (SELECT seq, "
                f"received_at, row FROM readings WHERE {where})",
                params,
            )[0]
        except sqlite3.DataError:  # longer than SQLite's longest string (1,000,000 wide rows)
            return None
        if not count:
            return None
        numbers = list(map(int, seqs.split(",")))
        if where != _NUMBERED and numbers != sorted(set(numbers)):
            return None
        return count, tuple(texts)

    def mark_sealed(
        self, chunk: ChunkRow, *, content_hash: str, rows_root: str, version: str, root: str
    ) -> None:
        """State 3: the chunk and its version are on chain."""
        with self._write() as conn:
            conn.execute(
                "UPDATE chunks SET state = 'sealed', sealed_at = ?, content_hash = ?, "
                "rows_root = ?, version_hash = ?, version_rows_root = ? "
                "WHERE stream = ? AND number = ?",
                (time.time(), content_hash, rows_root, version, root, chunk.stream, chunk.number),
            )

    def chunk(self, stream: str, number: int) -> ChunkRow | None:
        """Sealed chunk ``number`` of ``stream``, None if it is not sealed."""
        rows = self._read(
            "SELECT * FROM chunks WHERE stream = ? AND number = ? AND state = 'sealed'",
            (stream, number),
        )
        return ChunkRow(*rows[0]) if rows else None

    def chunks(self, stream: str, *, upto: int | None = None) -> list[ChunkRow]:
        """Sealed chunks of ``stream`` in order (up to number ``upto`` included)."""
        rows = self._read(
            "SELECT * FROM chunks WHERE stream = ? AND state = 'sealed' AND number <= ? "
            "ORDER BY number",
            (stream, upto if upto is not None else 2**62),
        )
        return [ChunkRow(*r) for r in rows]

    def versions(self, stream: str, *, offset: int, limit: int) -> tuple[list[ChunkRow], int]:
        """Sealed chunks, newest first (each made one version)."""
        rows = self._read(
            "SELECT * FROM chunks WHERE stream = ? AND state = 'sealed' ORDER BY number DESC "
            "LIMIT ? OFFSET ?",
            (stream, limit, offset),
        )
        (count,) = self._read(
            "SELECT count(*) FROM chunks WHERE stream = ? AND state = 'sealed'", (stream,)
        )[0]
        return [ChunkRow(*r) for r in rows], count

    def by_version(self, version_hash: str) -> ChunkRow | None:
        rows = self._read("SELECT * FROM chunks WHERE version_hash = ?", (version_hash,))
        return ChunkRow(*rows[0]) if rows else None


def _add_seq_ranges(conn: sqlite3.Connection) -> None:
    """Give a store made before chunks had seq ranges its two columns (its chunks keep NULL:
    their readings are numbered). Called in a write transaction: of two processes opening the
    store at once, one adds them."""
    names = {row[1] for row in conn.execute("PRAGMA table_info(chunks)")}
    for column in ("first_seq", "last_seq"):
        if column not in names:
            conn.execute(f"ALTER TABLE chunks ADD COLUMN {column} INTEGER")


def _stream(row: tuple[Any, ...]) -> StreamRow:
    name, columns, seal_readings, seal_seconds, created_at = row
    return StreamRow(name, json.loads(columns), seal_readings, seal_seconds, created_at)

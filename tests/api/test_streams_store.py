"""The streams' SQLite store (``api/streaming/store.py``) on its own, for what issue 27
changed in it:

* reads take a connection of their own and never wait for the write lock: a read answers while
  a write transaction is open, and sees only what is committed;
* a seal's plan writes down a range of seq, nothing a reading: the oldest unsealed readings of
  that stream only, rows 0..n-1 in arrival order, the next chunk after them;
* a store whose chunks numbered their readings (before that) reads and seals on.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from pathlib import Path

from api.streaming.rows import RowEncoder, chunk_csv_stored, chunk_csv_text
from api.streaming.store import StreamRow, StreamStore
from ml.columns import Column

TIMEOUT = 30.0


def _store(tmp_path: Path) -> StreamStore:
    store = StreamStore(tmp_path / "streams.sqlite3")
    for name in ("a", "b"):
        store.create(StreamRow(name, [{"name": "v", "type": "integer"}], 3, 3600.0, 0.0))
    return store


def test_a_read_answers_during_a_write_and_sees_only_what_is_committed(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.add("a", [("r1", 1_000, "[1]")])
    opened, release = threading.Event(), threading.Event()

    def write() -> None:
        with store._write() as conn:  # the write lock held, a reading added, not committed
            conn.execute(
                "INSERT INTO readings (stream, id, received_at, row) VALUES ('a', 'r2', 2, '[2]')"
            )
            opened.set()
            release.wait(TIMEOUT)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert opened.wait(TIMEOUT)
        seen: list[object] = []
        reader = threading.Thread(
            target=lambda: seen.extend([store.reading("a", "r1"), store.reading("a", "r2")])
        )
        reader.start()
        reader.join(TIMEOUT)
        assert not reader.is_alive(), "a read waited for the write lock"
        assert writer.is_alive()  # the write was still open while the read answered
        assert seen == [(1_000, None, None), None]
    finally:
        release.set()
        writer.join(TIMEOUT)
    assert store.reading("a", "r2") == (2, None, None)  # committed now
    store.close()


def test_a_write_holds_the_lock_file_another_processs_write_waits_on(tmp_path: Path) -> None:
    """Writers of two processes (the service, the MQTT worker) take turns by a lock file
    beside the store: a write waiting on it goes on as soon as the other ends, where SQLite's
    own busy handler sleeps (up to 100 ms at a time) and tries again."""
    store = _store(tmp_path)
    other = StreamStore(tmp_path / "streams.sqlite3")  # as another process opens it
    fd = os.open(tmp_path / "streams.sqlite3.write-lock", os.O_RDWR)
    order: list[str] = []
    opened, release = threading.Event(), threading.Event()

    def write() -> None:
        with store._write():
            opened.set()
            release.wait(TIMEOUT)
            order.append("first committed")

    first = threading.Thread(target=write)
    first.start()
    assert opened.wait(TIMEOUT)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = False
        except BlockingIOError:
            held = True
        assert held, "a write holds the lock file"
        second = threading.Thread(
            target=lambda: (other.add("a", [("r1", 1, "[1]")]), order.append("second"))
        )
        second.start()
        second.join(0.2)
        assert second.is_alive() and order == []  # waiting for the first write
    finally:
        release.set()
        first.join(TIMEOUT)
    second.join(TIMEOUT)
    assert order == ["first committed", "second"]
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free once no write is open
    os.close(fd)
    assert store.reading("a", "r1") == (1, None, None)
    other.close()
    store.close()


def test_a_plan_numbers_the_oldest_readings_of_its_stream_in_order(tmp_path: Path) -> None:
    store = _store(tmp_path)
    # interleaved arrivals of two streams; "a" out of id order, so seq decides
    for i in range(4):
        store.add("a", [(f"a{9 - i}", 100 + i, f"[{i}]")])
        store.add("b", [(f"b{i}", 200 + i, f"[{10 + i}]")])
    first = store.plan("a", 3)
    assert first is not None
    assert (first.number, first.count, first.first_row) == (1, 3, 0)
    assert (first.first_received, first.last_received) == (100, 102)
    assert store.chunk_rows("a", 1) == [(100, "[0]"), (101, "[1]"), (102, "[2]")]
    assert store.chunk_text("a", 1) == "100,0\n101,1\n102,2"  # the other stream's left out
    assert [store.reading("a", f"a{9 - i}")[1:] for i in range(4)] == [  # type: ignore[index]
        (1, 0), (1, 1), (1, 2), (None, None),
    ]  # fmt: skip
    assert store.reading("b", "b0") == (200, None, None)  # the other stream is untouched
    assert store.plan("a", 3) == first  # planned, not sealed: answered again
    store.mark_sealed(first, content_hash="c", rows_root="r", version="v", root="o")
    second = store.plan("a", 3)
    assert second is not None
    assert (second.number, second.count, second.first_row) == (2, 1, 3)
    assert store.chunk_rows("a", 2) == [(103, "[3]")]
    assert store.chunk_text("a", 2) == "103,3"
    store.mark_sealed(second, content_hash="c2", rows_root="r2", version="v2", root="o2")
    assert store.plan("a", 3) is None  # nothing waiting
    assert store.counts("a")["pending"] == 0 and store.counts("b")["pending"] == 4
    store.close()


_INSERT_R2 = "INSERT INTO readings (stream, id, received_at, row) VALUES ('a', 'r2', 102, '[2]')"


def test_a_plan_chooses_its_readings_while_another_write_holds_the_lock(tmp_path: Path) -> None:
    """The choice of a chunk's readings is a read: it goes on while the MQTT worker's write
    holds the lock file, and a reading that write commits afterwards falls past the chosen
    range; only the chunk's own row waits for the lock."""
    store = _store(tmp_path)
    worker = StreamStore(tmp_path / "streams.sqlite3")  # as the MQTT worker opens it
    store.add("a", [(f"r{i}", 100 + i, f"[{i}]") for i in range(2)])
    opened, chosen, release = threading.Event(), threading.Event(), threading.Event()
    choose = store._read

    def read(sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        answer = choose(sql, params)
        if "min(seq)" in sql:
            chosen.set()  # the readings are chosen
        return answer

    store._read = read  # type: ignore[method-assign]

    def write() -> None:
        with worker._write() as conn:  # the worker's write: the lock held, a reading added
            conn.execute(_INSERT_R2)
            opened.set()
            release.wait(TIMEOUT)

    writer = threading.Thread(target=write)
    writer.start()
    assert opened.wait(TIMEOUT)
    planned: list[object] = []
    planner = threading.Thread(target=lambda: planned.append(store.plan("a", 3)))
    planner.start()
    try:
        assert chosen.wait(TIMEOUT), "the choice waited for the write lock"
        planner.join(0.2)
        assert planner.is_alive()  # its row waits for the lock
    finally:
        release.set()
        writer.join(TIMEOUT)
    planner.join(TIMEOUT)
    [first] = planned
    assert first is not None and (first.count, first.first_seq, first.last_seq) == (2, 1, 2)
    assert store.chunk_rows("a", 1) == [(100, "[0]"), (101, "[1]")]
    store.mark_sealed(first, content_hash="c", rows_root="r", version="v", root="o")
    second = store.plan("a", 3)
    assert second is not None and (second.number, second.first_row) == (2, 2)
    assert store.chunk_rows("a", 2) == [(102, "[2]")]  # committed after the choice: next
    worker.close()
    store.close()


def test_a_plan_chooses_again_when_a_chunk_was_planned_meanwhile(tmp_path: Path) -> None:
    """A chunk planned by another writer between the choice and its write (the service plans
    under its stream lock, so only another process could): the plan chooses again and answers
    that chunk, rather than a second chunk over the same readings."""
    store = _store(tmp_path)
    other = StreamStore(tmp_path / "streams.sqlite3")
    store.add("a", [(f"r{i}", 100 + i, f"[{i}]") for i in range(4)])
    choose = store._read
    raced: list[object] = []

    def read(sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        answer = choose(sql, params)
        if "min(seq)" in sql and not raced:
            raced.append(other.plan("a", 3))  # after the choice, before its write
        return answer

    store._read = read  # type: ignore[method-assign]
    planned = store.plan("a", 3)
    [theirs] = raced
    assert planned == theirs
    assert store.chunks("a") == [] and other.plan("a", 3) == planned
    assert store._read("SELECT count(*) FROM chunks WHERE stream = 'a'", ()) == [(1,)]
    other.close()
    store.close()


def test_a_write_longer_than_one_statement_stores_each_reading_once_in_arrival_order(
    tmp_path: Path,
) -> None:
    """Readings go in by statements of up to 128 rows: 300 span three, keep their order, and
    an id seen before (in an earlier write or the same one) is stored once."""
    store = _store(tmp_path)
    assert store.add("a", [(f"r{i}", 1_000 + i, f"[{i}]") for i in range(300)]) == 300
    again = [(f"r{i}", 5_000 + i, "[-1]") for i in range(290, 300)]  # seen before
    fresh = [(f"n{i}", 6_000 + i, f"[{300 + i}]") for i in range(5)]
    assert store.add("a", [*again, *fresh, fresh[0]]) == 5
    planned = store.plan("a", 1_000)
    assert planned is not None and planned.count == 305
    assert store.chunk_rows("a", planned.number) == [
        *((1_000 + i, f"[{i}]") for i in range(300)),
        *((6_000 + i, f"[{300 + i}]") for i in range(5)),
    ]
    assert store.chunk_text("a", planned.number) == "\n".join(
        [*(f"{1_000 + i},{i}" for i in range(300)), *(f"{6_000 + i},{300 + i}" for i in range(5))]
    )
    store.close()


def test_a_chunks_text_makes_the_file_its_rows_make(tmp_path: Path) -> None:
    """SQLite's text of a chunk (``chunk_text``) gives the very file the rows give in Python
    (``chunk_csv_stored``): integers, floats in every form ``repr`` writes, booleans."""
    columns = [Column("n", "integer"), Column("x", "float"), Column("ok", "boolean")]
    encoder = RowEncoder(columns, max_chars=100)
    values = [
        (0, 0.0, True), (-(2**63) + 1, -1.5e-07, False), (2**63 - 1, 1e16, True),
        (42, 5e-324, False), (-7, 1.7976931348623157e308, True), (3, -0.0, False),
    ]  # fmt: skip
    stored = [
        (1_765_000_000_000 + i, encoder.encode({"n": n, "x": x, "ok": ok})[1])
        for i, (n, x, ok) in enumerate(values)
    ]
    store = _store(tmp_path)
    store.add("a", [(f"r{i}", at, row) for i, (at, row) in enumerate(stored)])
    planned = store.plan("a", 10)
    assert planned is not None
    text = store.chunk_text("a", planned.number)
    assert text is not None
    assert chunk_csv_text(columns, text) == chunk_csv_stored(columns, stored)
    store.close()


def test_a_chunk_with_a_line_feed_in_a_stored_row_is_read_row_by_row(tmp_path: Path) -> None:
    """A chunk's rows are read in one step, joined by line feeds; should a stored row ever hold
    one (JSON allows it between tokens), the count no longer matches and the rows are read
    one by one, the same."""
    store = _store(tmp_path)
    store.add("a", [("r0", 100, "[0]"), ("r1", 101, "[\n1]"), ("r2", 102, "[2]")])
    planned = store.plan("a", 3)
    assert planned is not None
    assert store.chunk_rows("a", planned.number) == [(100, "[0]"), (101, "[\n1]"), (102, "[2]")]
    assert store.chunk_text("a", planned.number) is None  # its lines would not be its rows
    store.close()


def test_a_chunk_longer_than_sqlites_longest_string_is_read_row_by_row(tmp_path: Path) -> None:
    store = _store(tmp_path)
    rows = [(100 + i, f"[{str(i) * 1_500}]") for i in range(3)]  # 1,502 characters each
    store.add("a", [(f"r{i}", at, row) for i, (at, row) in enumerate(rows)])
    planned = store.plan("a", 3)
    assert planned is not None
    reader = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    # a row fits, and so does the schema's longest statement; the three rows joined do not
    reader.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 4_000)
    store._idle[:] = [reader]
    assert store.chunk_rows("a", planned.number) == rows
    assert store.chunk_text("a", planned.number) is None
    store.close()


def test_a_store_whose_chunks_numbered_their_readings_reads_and_seals_on(tmp_path: Path) -> None:
    """Before chunks were seq ranges, a plan gave each reading its chunk and row, and the chunks
    table had no range columns: such a store opens (the columns are added), its chunks read as
    numbered, a chunk it left planned is sealed first, and the next chunk takes only the
    readings no chunk holds."""
    store = _store(tmp_path)
    store.add("a", [(f"r{i}", 100 + i, f"[{i}]") for i in range(6)])
    store.close()
    legacy = sqlite3.connect(tmp_path / "streams.sqlite3", isolation_level=None)
    legacy.execute("ALTER TABLE chunks DROP COLUMN last_seq")
    legacy.execute("ALTER TABLE chunks DROP COLUMN first_seq")
    # chunk 1 (sealed) numbered r0..r2, chunk 2 (planned) numbered r3, as the old plan did
    for i in range(4):
        legacy.execute(
            "UPDATE readings SET chunk = ?, position = ? WHERE id = ?",
            (1 if i < 3 else 2, i if i < 3 else 0, f"r{i}"),
        )
    legacy.execute(
        "INSERT INTO chunks VALUES ('a', 1, 'sealed', 3, 0, 100, 102, 1.0, 2.0, 'c1', 'r1', "
        "'v1', 'o1'), ('a', 2, 'planned', 1, 3, 103, 103, 3.0, NULL, NULL, NULL, NULL, NULL)"
    )
    legacy.close()

    store = StreamStore(tmp_path / "streams.sqlite3")
    assert store.chunk_rows("a", 1) == [(100, "[0]"), (101, "[1]"), (102, "[2]")]
    assert store.reading("a", "r1") == (101, 1, 1)
    planned = store.plan("a", 3)
    assert planned is not None and (planned.number, planned.first_seq) == (2, None)
    assert store.chunk_rows("a", 2) == [(103, "[3]")]
    assert store.chunk_text("a", 1) == "100,0\n101,1\n102,2"  # numbered: in their order
    store.mark_sealed(planned, content_hash="c2", rows_root="r2", version="v2", root="o2")
    third = store.plan("a", 3)
    assert third is not None and (third.number, third.count, third.first_row) == (3, 2, 4)
    assert store.chunk_rows("a", 3) == [(104, "[4]"), (105, "[5]")]
    assert [store.reading("a", f"r{i}") for i in (3, 4, 5)] == [
        (103, 2, 0), (104, 3, 0), (105, 3, 1),
    ]  # fmt: skip
    assert store.pending("a", upto=100) == (0, None)
    store.close()

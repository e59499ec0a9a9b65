"""The steps of MQTT ingest and sealing one at a time (issue 27), so that a change to one has
its own figure: each is timed in this process, on a private store, over the shapes
``bench_streams`` sends (readings ``{"id", "seq", "value"}``, ten to a message).

* a message parsed: ``loads_json`` (orjson behind a guard for 19-digit numbers) against the
  guard it replaced (a regular expression) and against orjson alone;
* a reading checked and encoded (``RowEncoder.encode``), stored (``StreamStore.add``);
* a message of ten readings parsed, checked and encoded reading by reading (``loads_json`` and
  ``RowEncoder.encode``, the path every message took until the fifteenth session) and whole
  (``MessageEncoder.rows``, msgspec);
* messages parsed and encoded in the MQTT worker's batches, with Python's cycle collector as
  it comes and as the worker sets it (``collect_less``);
* a chunk of 10,000 readings planned (``StreamStore.plan``: a range of seq written down) against
  the ``UPDATE`` a reading that planned it before, read back (``chunk_rows``) and made into its
  file, from the rows or from SQLite's text of them (``chunk_text``);
* a version's root over 100 and over 1,000 chunks: from the chunks (``chunk_tree``, what a
  seal did until the sealer kept the earlier leaves' hashes; a proof still does), and from the
  kept hashes and the new chunk's leaf (``LeafHashTree``, what a seal does now);
* a stream's 1,000 sealed chunks read (``StreamStore.chunks``: what a seal did twice until the
  sealer kept what it needs), and a page of 50 versions' chunk lists, read once a version (as
  before) or once for the page (the reads ``Streams._version_views`` makes now).

Run: ``python -m bench.streams_steps`` (about 20 s).
"""

from __future__ import annotations

import gc
import re
import tempfile
import time
import timeit
from pathlib import Path

import orjson

from api.service._stream_seal import chunk_tree
from api.streaming.message_rows import MessageEncoder
from api.streaming.mqtt_worker import collect_less
from api.streaming.rows import (
    CHUNK_LEAF_ENCODING,
    RowEncoder,
    chunk_csv_stored,
    chunk_csv_text,
    loads_json,
    message_readings,
)
from api.streaming.store import ChunkRow, StreamRow, StreamStore
from ledger.formats.merkle import LeafHashTree, leaf_hash
from ml.columns import Column

__all__ = ["main"]

CHUNK = 10_000
_OLD_GUARD = re.compile(rb"[0-9]{19}")
# How a chunk was planned before it was a range of seq (one UPDATE a reading)
_OLD_PLAN = (
    "UPDATE readings SET chunk = ?, position = picked.position FROM ("
    "SELECT seq, row_number() OVER (ORDER BY seq) - 1 AS position FROM ("
    "SELECT seq FROM readings WHERE stream = ? AND chunk IS NULL ORDER BY seq "
    "LIMIT ?)) AS picked WHERE readings.seq = picked.seq"
)


def _us(statement: object, number: int) -> float:
    return timeit.timeit(statement, number=number) / number * 1e6  # type: ignore[arg-type]


def _store(folder: Path, readings: int) -> StreamStore:
    store = StreamStore(folder / "streams.sqlite3")
    columns = [{"name": "seq", "type": "integer"}, {"name": "value", "type": "float"}]
    store.create(StreamRow("m", columns, CHUNK, 3600.0, 0.0))
    for start in range(0, readings, 5_000):
        store.add(
            "m",
            [
                (f"r{i}", 1_765_000_000_000 + i, f"[{i},{i / 3!r}]")
                for i in range(start, start + 5_000)
            ],
        )
    return store


def _batches(encoder: RowEncoder, messages: list[bytes]) -> tuple[float, int]:
    """CPU a reading and collections run, parsing and encoding ``messages`` in batches of 500
    as the worker's writer does (the last 20 batches' rows held, as until their commit)."""
    runs = [0]

    def count(phase: str, _info: object) -> None:
        runs[0] += phase == "start"

    gc.callbacks.append(count)
    held: list[object] = []
    t0 = time.process_time()
    for start in range(0, len(messages), 500):
        batch = [message_readings("m/m", m) for m in messages[start : start + 500]]
        held.append([encoder.encode(r) for b in batch for r in b.readings])
        del held[:-20]
    cpu = time.process_time() - t0
    gc.callbacks.remove(count)
    return cpu / (10 * len(messages)) * 1e6, runs[0]


def _collector(encoder: RowEncoder) -> None:
    messages = [
        orjson.dumps([{"id": f"r{i}", "seq": i, "value": i / 3} for i in range(s, s + 10)])
        for s in range(0, 300_000, 10)
    ]
    before = gc.get_threshold()
    print("300,000 readings parsed and encoded in batches of 500 messages:")
    as_is, runs = _batches(encoder, messages)
    print(f"  the collector as it comes   {as_is:8.2f} us of CPU a reading, {runs} collections")
    collect_less()
    less, runs = _batches(encoder, messages)
    print(f"  as the worker sets it       {less:8.2f} us of CPU a reading, {runs} collections")
    gc.unfreeze()
    gc.set_threshold(*before)


def main() -> None:
    message = orjson.dumps([{"id": f"r{i}", "seq": i, "value": i / 3} for i in range(10)])
    print(f"a message of ten readings, {len(message)} bytes, parsed (us):")
    print(f"  loads_json                          {_us(lambda: loads_json(message), 20_000):8.2f}")
    print(
        f"  orjson alone                        {_us(lambda: orjson.loads(message), 20_000):8.2f}"
    )
    guard = _us(lambda: _OLD_GUARD.search(message), 20_000)
    print(f"  the regular expression it replaced  {guard:8.2f} (the guard alone)")

    columns = [Column("seq", "integer"), Column("value", "float")]
    encoder = RowEncoder(columns, max_chars=1000)
    objects = orjson.loads(message)
    encode = _us(lambda: [encoder.encode(o) for o in objects], 10_000) / len(objects)
    print(f"a reading checked and encoded (us):   {encode:8.2f}")

    whole = MessageEncoder(columns)
    assert whole.rows(message, str) == [encoder.encode(o) for o in objects]
    by_reading = _us(lambda: [encoder.encode(o) for o in loads_json(message)], 10_000)
    print("a message of ten readings parsed, checked and encoded (us):")
    print(f"  reading by reading (loads_json, RowEncoder)  {by_reading:8.2f}")
    at_once = _us(lambda: whole.rows(message, str), 10_000)
    print(f"  whole (MessageEncoder, msgspec)              {at_once:8.2f}")

    _collector(encoder)
    for chunks in (100, 1_000):
        leaves = [(i, "0x" + "ab" * 32, "0x" + "cd" * 32, i * CHUNK, CHUNK) for i in range(chunks)]
        tree = _us(lambda leaves=leaves: chunk_tree(leaves).root, 20) / 1e3
        label = f"a version's root over {chunks:,} chunks, from them (ms):"
        print(f"{label:52}{tree:8.2f}")
        kept = [leaf_hash(CHUNK_LEAF_ENCODING, leaf) for leaf in leaves[:-1]]

        def root(kept: list[bytes] = kept, last: tuple = leaves[-1]) -> bytes:
            return LeafHashTree([*kept, leaf_hash(CHUNK_LEAF_ENCODING, last)]).root

        assert root() == chunk_tree(leaves).root
        label = "  from the kept leaves' hashes (ms):"
        print(f"{label:52}{_us(root, 200) / 1e3:8.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.process_time()
        store = _store(folder, 10 * CHUNK)
        added = (time.process_time() - t0) / (10 * CHUNK) * 1e6
        print(f"a reading stored, in 5,000 a commit (us of CPU): {added:.2f}")
        plans, reads, files, texts = [], [], [], []
        columns = [Column("seq", "integer"), Column("value", "float")]
        for number in range(1, 6):
            t0 = time.perf_counter()
            chunk = store.plan("m", CHUNK)
            plans.append(time.perf_counter() - t0)
            assert chunk is not None and chunk.number == number
            t0 = time.perf_counter()
            rows = store.chunk_rows("m", number)
            reads.append(time.perf_counter() - t0)
            by_rows = chunk_csv_stored(columns, rows)
            files.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            text = store.chunk_text("m", number)
            assert text is not None and chunk_csv_text(columns, text) == by_rows
            texts.append(time.perf_counter() - t0)
            store.mark_sealed(
                chunk, content_hash="c", rows_root="r", version=f"v{number}", root="o"
            )
        print(f"a chunk of {CHUNK:,} planned (ms, median of 5):  {sorted(plans)[2] * 1e3:8.2f}")
        print(f"a chunk of {CHUNK:,} read back (ms, median of 5): {sorted(reads)[2] * 1e3:8.2f}")
        print(f"  and its file made from the rows (ms):   {sorted(files)[2] * 1e3:8.2f}")
        print(f"  its file from SQLite's text of it (ms): {sorted(texts)[2] * 1e3:8.2f}")
        updates = []
        with store._write() as conn:  # the old plan, on the readings no chunk holds yet
            for number in range(100, 105):
                t0 = time.perf_counter()
                conn.execute(_OLD_PLAN, (number, "m", CHUNK))
                updates.append(time.perf_counter() - t0)
            conn.execute("ROLLBACK")
            conn.execute("BEGIN")  # the context commits what is open: nothing
        print(
            f"the UPDATE a reading it replaced (ms, median of 5): {sorted(updates)[2] * 1e3:8.2f}"
        )
        store.close()
    _long_stream()


def _long_stream(chunks: int = 1_000, page: int = 50) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = StreamStore(Path(tmp) / "streams.sqlite3")
        store.create(StreamRow("m", [{"name": "seq", "type": "integer"}], 1, 3600.0, 0.0))
        store.add("m", [(f"r{i}", 1_765_000_000_000 + i, f"[{i}]") for i in range(chunks)])
        for number in range(1, chunks + 1):
            chunk = store.plan("m", 1)
            assert chunk is not None
            store.mark_sealed(
                chunk, content_hash=f"c{number}", rows_root="r", version=f"v{number}", root="o"
            )
        read = _us(lambda: store.chunks("m"), 20) / 1e3
        print(f"a stream's {chunks:,} sealed chunks read (ms): {read:8.2f}")
        rows, _ = store.versions("m", offset=0, limit=page)

        def each() -> list[list[ChunkRow]]:
            return [store.chunks("m", upto=c.number) for c in rows]

        def once() -> list[list[ChunkRow]]:
            listed = store.chunks("m", upto=max(c.number for c in rows))
            return [listed[: c.number] for c in rows]

        assert each() == once()
        label = f"a page of {page} versions' chunks, read once a version (ms):"
        print(f"{label:56}{_us(each, 5) / 1e3:8.2f}")
        print(f"{'  read once for the page (ms):':56}{_us(once, 5) / 1e3:8.2f}")
        store.close()


if __name__ == "__main__":
    main()

"""A whole message checked and encoded by msgspec (``MessageEncoder``, issue 27) stores exactly
what the reading-by-reading path stores, or leaves the message to it: compared on generated
messages, on the values where the two write floats differently, and through ``StreamIngest``
with good, refused and unparseable messages mixed in one batch."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.streaming.ingest import StreamIngest
from api.streaming.message_rows import MessageEncoder
from api.streaming.rows import ReadingRefused, RowEncoder, message_key, message_readings
from api.streaming.store import StreamRow, StreamStore
from ml.columns import Column

COLUMNS = [Column("n", "integer"), Column("x", "float"), Column("ok", "boolean")]
TOPIC = "provenance/streams/line"

_values = (
    st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(min_value=1e-6, max_value=1e-3)  # where msgspec and repr write floats apart
    | st.booleans()
    | st.none()
    | st.text(max_size=3)
)
_ids = st.none() | st.integers(min_value=-(2**70), max_value=2**70) | st.text(max_size=300)


@st.composite
def _reading(draw: Any) -> Any:
    obj = {c.name: draw(_values) for c in COLUMNS if draw(st.integers(min_value=0, max_value=20))}
    if draw(st.booleans()):
        obj["id"] = draw(_ids)
    if not draw(st.integers(min_value=0, max_value=20)):
        obj["extra"] = 1
    return obj


def _reference(payload: bytes) -> list[tuple[str, str]] | None:
    """What the reading-by-reading path stores of a message, None when it refuses any of it."""
    decoded = message_readings(TOPIC, payload)
    encoder = RowEncoder(COLUMNS, max_chars=100)
    rows = []
    for place, parsed in enumerate(decoded.readings):
        if isinstance(parsed, ReadingRefused):
            return None
        try:
            reading_id, row = encoder.encode(parsed)
        except ReadingRefused:
            return None
        rows.append((reading_id if reading_id is not None else f"{decoded.key}:{place}", row))
    return rows


def _rows(payload: bytes) -> list[tuple[str, str]] | None:
    return MessageEncoder(COLUMNS).rows(payload, lambda: message_key(TOPIC, payload))


@settings(max_examples=600, deadline=None)
@given(st.lists(_reading(), max_size=4), st.booleans())
def test_a_message_is_stored_as_reading_by_reading_or_left_to_it(
    readings: list[Any], single: bool
) -> None:
    payload = json.dumps(readings[0] if single and readings else readings).encode()
    rows = _rows(payload)
    if rows is not None:
        assert rows == _reference(payload)


@pytest.mark.parametrize(
    "x",
    [0.0, -0.0, 1.0, 0.1, 1 / 3, 5, -(2**53), 0.0001, 123456.789, 1e15, 2.5e15, 9007199254740993],
)
def test_ordinary_readings_take_the_whole_message_path(x: Any) -> None:
    readings = [{"n": 2**63 - 1, "x": x, "ok": True, "id": "r-1"}, {"n": -5, "x": x, "ok": False}]
    payload = json.dumps(readings).encode()
    assert _rows(payload) == _reference(payload) is not None


@pytest.mark.parametrize(
    "text",
    [
        b'{"n": 1, "x": 1e16, "ok": true}',  # repr writes 1e+16, msgspec 1e16
        b'{"n": 1, "x": 0.00001, "ok": false}',  # repr writes 1e-05, msgspec 0.00001
        b'{"n": 1, "x": -2.5e-7, "ok": true}',
        b'{"n": 1, "x": 12345678901234567890, "ok": true}',
        b'{"n": 9223372036854775808, "x": 1.0, "ok": true}',  # past int64: refused
        b'{"n": -9223372036854775808, "x": 1.0, "ok": true}',
        b'{"n": 1.0, "x": 1.0, "ok": true}',
        b'{"n": true, "x": 1.0, "ok": true}',
        b'{"n": 1, "x": true, "ok": true}',
        b'{"n": 1, "x": 1e400, "ok": true}',
        b'{"n": 1, "x": NaN, "ok": true}',
        b'{"n": 1, "x": 1.0, "ok": 1}',
        b'{"n": 1, "x": 1.0}',
        b'{"n": 1, "x": 1.0, "ok": true, "extra": 1}',
        b'{"n": 1, "x": 1.0, "ok": true, "id": ""}',
        b'{"n": 1, "x": 1.0, "ok": true, "id": true}',
        b'{"n": 1, "x": 1.0, "ok": true, "id": 1.5}',
        b'{"n": 1, "x": 1.0, "ok": true, "id": "\\ud800"}',
        b'{"n": 1, "x": 1.0, "ok": true, "id": "\xed\xa0\x80"}',
        b'\xef\xbb\xbf{"n": 1, "x": 1.0, "ok": true}',
        b'[{"n": 1, "x": 1.0, "ok": true}, 3]',
        b"{not json",
        b"7",
    ],
)
def test_what_msgspec_cannot_store_as_repr_would_is_left_to_the_reading_path(
    text: bytes,
) -> None:
    assert _rows(text) is None
    decoded = message_readings(TOPIC, text)
    assert decoded.readings  # the other path stores or refuses it, with a reason


def test_ids_are_given_and_derived_as_on_the_reading_path() -> None:
    payload = b'[{"n": 1, "x": 2, "ok": true, "id": 7}, {"n": 2, "x": 0.5, "ok": false}]'
    key = message_key(TOPIC, payload)
    assert _rows(payload) == [("7", "[1,2.0,true]"), (f"{key}:1", "[2,0.5,false]")]
    asked = []
    with_ids = b'{"n": 1, "x": 2, "ok": true, "id": "a"}'
    MessageEncoder(COLUMNS).rows(with_ids, lambda: asked.append(1) or "")  # type: ignore[func-returns-value]
    assert asked == []  # the message's hash only when a reading needs it


def test_streams_with_a_string_column_are_not_served() -> None:
    assert MessageEncoder.serves(COLUMNS)
    assert not MessageEncoder.serves([*COLUMNS, Column("label", "string")])


def test_a_batch_keeps_arrival_order_across_both_paths(tmp_path: Path) -> None:
    store = StreamStore(tmp_path / "streams.sqlite3")
    columns = [{"name": c.name, "type": c.type} for c in COLUMNS]
    store.create(StreamRow("line", columns, 100, 60.0, 0.0))
    ingest = StreamIngest(store, max_chars=100)
    payloads = [
        b'{"n": 1, "x": 1.5, "ok": true, "id": "a"}',  # new to the ingest: looked up
        b'{"n": 2, "x": 1.5, "ok": true, "id": "b"}',
        b'[{"n": 3, "x": 1e16, "ok": true, "id": "c"}, {"n": "4", "x": 1, "ok": true}]',
        b"{not json",
        b'[{"n": 5, "x": 0.25, "ok": false, "id": "d"}]',
    ]
    for first in (True, False):
        decoded = [ingest.decode("line", TOPIC, p) for p in payloads]
        assert [m.checked is not None for m in decoded] == (
            [False] * 5 if first else [True, True, False, False, True]
        )
        added = ingest.store_messages({"line": decoded}, source="mqtt")
        assert added == ({"line": 4} if first else {})  # the second time, all seen
    store.plan("line", 100)
    rows = [row for _, row in store.chunk_rows("line", 1)]
    assert rows == ["[1,1.5,true]", "[2,1.5,true]", "[3,1e+16,true]", "[5,0.25,false]"]
    letters, count = store.dead_letters("line", offset=0, limit=10)
    assert count == 4 and {d.reason for d in letters} >= {"column 'n' must be an integer, got '4'"}
    assert any(d.reason.startswith("not JSON") for d in letters)
    assert math.isclose(float(rows[2].split(",")[1]), 1e16)

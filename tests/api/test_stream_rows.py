"""A stream's rows without I/O: the fast row encoder agrees with the reference check on every
value and every refusal, and a chunk's CSV reads back, with ``ml``'s own scanner, as the
declared types and the same values. The fast paths of issue 27 (orjson before ``json.loads``,
a chunk's CSV from the rows as stored) give what the paths they replace give."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.streaming.rows import (
    ReadingRefused,
    RowEncoder,
    check_reading,
    chunk_csv,
    chunk_csv_stored,
    file_columns,
    loads_json,
    message_readings,
    split_body,
    stream_schema_hash,
)
from ml.columns import Column, Limits
from ml.hashing import to_hex
from ml.scanning import scan_file

COLUMNS = [
    Column("n", "integer"),
    Column("x", "float"),
    Column("ok", "boolean"),
    Column("label", "string"),
]
GOOD = [
    {"n": 0, "x": 0.0, "ok": False, "label": "a"},
    {"id": "r-1", "n": -(2**63) + 1, "x": 1e300, "ok": True, "label": 'é, "quoted"\nline'},
    {"id": 7, "n": 2**63 - 1, "x": 3, "ok": True, "label": "12"},
    {"n": 5, "x": -2.5e-7, "ok": False, "label": "x" * 50},
    {"n": 5, "x": 2**60, "ok": False, "label": "true"},
    {"id": "é-1", "n": 5, "x": 1.5, "ok": True, "label": "\U0001f600 ü"},
]
BAD = [
    [],
    "text",
    {"n": 1, "x": 1.0, "ok": True},
    {"n": 1, "x": 1.0, "ok": True, "label": "a", "extra": 1},
    {"n": 1.0, "x": 1.0, "ok": True, "label": "a"},
    {"n": True, "x": 1.0, "ok": True, "label": "a"},
    {"n": 2**63, "x": 1.0, "ok": True, "label": "a"},
    {"n": 1, "x": math.inf, "ok": True, "label": "a"},
    {"n": 1, "x": math.nan, "ok": True, "label": "a"},
    {"n": 1, "x": "1.0", "ok": True, "label": "a"},
    {"n": 1, "x": 1.0, "ok": 1, "label": "a"},
    {"n": 1, "x": 1.0, "ok": True, "label": ""},
    {"n": 1, "x": 1.0, "ok": True, "label": "y" * 101},
    {"n": 1, "x": 1.0, "ok": True, "label": None},
    {"id": "", "n": 1, "x": 1.0, "ok": True, "label": "a"},
    {"id": 1.5, "n": 1, "x": 1.0, "ok": True, "label": "a"},
    {"n": 1, "x": 1.0, "ok": True, "label": "a\ud800"},  # not text SQLite can store
    {"id": "\udfff", "n": 1, "x": 1.0, "ok": True, "label": "a"},
]


@pytest.mark.parametrize("obj", GOOD)
def test_the_fast_encoder_agrees_with_the_reference(obj: dict[str, Any]) -> None:
    reading = check_reading(obj, COLUMNS, max_chars=100)
    reading_id, row = RowEncoder(COLUMNS, max_chars=100).encode(obj)
    assert reading_id == reading.id
    assert json.loads(row) == list(reading.values)
    assert [type(v) for v in json.loads(row)] == [int, float, bool, str]


@pytest.mark.parametrize("obj", BAD)
def test_the_fast_encoder_refuses_what_the_reference_refuses(obj: Any) -> None:
    with pytest.raises(ReadingRefused) as reference:
        check_reading(obj, COLUMNS, max_chars=100)
    with pytest.raises(ReadingRefused) as fast:
        RowEncoder(COLUMNS, max_chars=100).encode(obj)
    assert str(fast.value) == str(reference.value)


def test_a_chunk_reads_back_with_the_declared_types(tmp_path: Any) -> None:
    encoder = RowEncoder(COLUMNS, max_chars=100)
    rows = [(1_700_000_000_000 + i, json.loads(encoder.encode(o)[1])) for i, o in enumerate(GOOD)]
    path = tmp_path / "chunk.csv"
    path.write_bytes(chunk_csv(COLUMNS, rows))
    scan = scan_file(path, _limits())
    # "label" holds "12" and "true" among words: still a string column
    assert list(scan.columns) == file_columns(COLUMNS)
    assert _hex(scan.schema_hash) == stream_schema_hash(COLUMNS)
    assert scan.row_count == len(GOOD)


def test_a_body_is_an_array_or_json_lines() -> None:
    assert split_body(b'[{"a": 1}, 2]') == [('{"a": 1}', {"a": 1}), ("2", 2)]
    items = split_body(b'{"a": 1}\n\nnope\n')
    assert items is not None and items[0] == ('{"a": 1}', {"a": 1})
    assert isinstance(items[1][1], ReadingRefused)
    assert split_body(b"[1,") is None and split_body(b"\xff") is None
    assert split_body(b"  \n") == []


def _limits() -> Limits:
    return Limits()


def _hex(value: bytes | str) -> str:
    return value if isinstance(value, str) else to_hex(value)


# -- the fast paths of issue 27, each against the slow path it replaces -----------------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal types all the way down (``1 == 1.0``, ``nan != nan`` and
    ``0.0 == -0.0`` would hide a difference)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return repr(a) == repr(b)
    return bool(a == b)


def _outcome(loads: Any, data: bytes) -> tuple[str, Any]:
    try:
        return "value", loads(data)
    except (ValueError, RecursionError) as exc:
        return type(exc).__name__, str(exc)


@settings(max_examples=400, deadline=None)
@given(_JSON, st.booleans())
def test_loads_json_reads_what_json_loads_reads(value: Any, ascii_only: bool) -> None:
    data = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    fast, slow = _outcome(loads_json, data), _outcome(json.loads, data)
    assert fast[0] == slow[0] and (_same(fast[1], slow[1]) if fast[0] == "value" else True)
    if fast[0] != "value":
        assert fast == slow  # the same error, the same message: a dead letter's reason


_ODD = [b"\xef\xbb\xbf[1]", b"[1e400]", b"[NaN]", b'{"a": 1, "a": 2}', b"[" * 2000, b" 7 "]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=40) | st.sampled_from(_ODD))
def test_loads_json_fails_as_json_loads_fails(data: bytes) -> None:
    fast, slow = _outcome(loads_json, data), _outcome(json.loads, data)
    assert fast[0] == slow[0]
    assert _same(fast[1], slow[1]) if fast[0] == "value" else fast == slow


NUMBERS = [Column("n", "integer"), Column("x", "float"), Column("ok", "boolean")]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=2**53),
            st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1),
            st.floats(allow_nan=False, allow_infinity=False)
            | st.integers(min_value=-(2**53), max_value=2**53),
            st.booleans(),
            st.booleans(),
        ),
        max_size=20,
    )
)
def test_a_chunk_from_stored_rows_is_the_chunk_from_parsed_rows(rows: list[Any]) -> None:
    encoder = RowEncoder(NUMBERS, max_chars=100)
    stored = []
    for received, n, x, ok, by_slow_path in rows:
        reading = {"n": n, "x": x, "ok": ok}
        # the slow path writes a row too (json.dumps): an id given as a number takes it
        _, row = encoder.encode({**reading, "id": 7} if by_slow_path else reading)
        stored.append((received, row))
    parsed = [(received, json.loads(row)) for received, row in stored]
    assert chunk_csv_stored(NUMBERS, stored) == chunk_csv(NUMBERS, parsed)
    # with a string column, the stored rows are parsed and written as before
    encoder = RowEncoder(COLUMNS, max_chars=100)
    strings = [(i, encoder.encode(o)[1]) for i, o in enumerate(GOOD)]
    assert chunk_csv_stored(COLUMNS, strings) == chunk_csv(
        COLUMNS, [(i, json.loads(row)) for i, row in strings]
    )


def test_a_messages_readings_are_named_as_before() -> None:
    topic, payload = (
        "provenance/streams/line",
        b'[{"seq": 1, "value": 0.5}, {"seq": 2, "value": 1}]',
    )
    seed = hashlib.sha256(topic.encode() + b"\0" + payload).hexdigest()
    decoded = message_readings(topic, payload)
    assert decoded.key == f"mqtt:{seed}" and decoded.text is None
    assert decoded.readings == json.loads(payload)
    assert message_readings(topic, b'{"seq": 1}').readings == [{"seq": 1}]
    bad = message_readings(topic, b"{not json")
    assert bad.text == "{not json"
    [reason] = bad.readings
    assert isinstance(reason, ReadingRefused)
    with pytest.raises(ValueError) as expected:
        json.loads(b"{not json")
    assert str(reason) == f"not JSON: {expected.value}"

"""A stream's rows without I/O: the fast row encoder agrees with the reference check on every
value and every refusal, and a chunk's CSV reads back, with ``ml``'s own scanner, as the
declared types and the same values."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from api.service._stream_rows import (
    ReadingRefused,
    RowEncoder,
    check_reading,
    chunk_csv,
    file_columns,
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

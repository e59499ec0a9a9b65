"""A stream's readings as data, with no I/O: checking a reading against the stream's columns,
splitting a request body into readings, writing a chunk's CSV, and a version's chunk leaves.

Why these rules (written down because an auditor re-reads a chunk with :mod:`ml.datasets`):

* A chunk is a CSV whose first column is ``received_at`` (integer milliseconds since the epoch,
  stamped by the service on arrival) followed by the stream's declared columns, one row per
  reading in arrival order. The reading's client id is not a column: ids are the service's
  de-duplication key, and a column of ids that all look like numbers would change the
  chunk's inferred types.
* Values are written so that :mod:`ml.datasets` infers the declared type back: a float
  always with a ``.`` or an exponent (Python ``repr``), a boolean as ``true``/``false``. A
  string column whose values in one chunk all look like numbers is inferred as numeric by
  that chunk's file (the version records the declared schema's hash regardless).
* A reading must carry exactly the declared columns (and optionally ``id``), each non-null
  and of its type; an empty string is refused, since CSV reads it back as a missing value.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring as _encode_string  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Any

import orjson

from ml.columns import Column, compute_schema_hash
from ml.hashing import to_hex

if TYPE_CHECKING:
    from api.streaming.store import StreamRow

__all__ = [
    "CHUNK_LEAF_ENCODING",
    "RECEIVED_AT",
    "MessageReadings",
    "ReadingRefused",
    "RowEncoder",
    "check_reading",
    "chunk_csv",
    "chunk_csv_stored",
    "chunk_csv_text",
    "file_columns",
    "loads_json",
    "message_key",
    "message_readings",
    "split_body",
    "stream_columns",
    "stream_schema_hash",
]

RECEIVED_AT = "received_at"
RESERVED = frozenset({RECEIVED_AT, "id"})
ID_MAX_CHARS = 256
# A version's rows root is the StandardMerkleTree root over one leaf per chunk:
# (position of the chunk in the version, its content hash, its rows root, the version row
# where it starts, its row count).
CHUNK_LEAF_ENCODING = ("uint256", "bytes32", "bytes32", "uint256", "uint256")
# 19 digits in a row: every digit made a 9, then a plain substring search (a regular expression
# cost 10 us a message of ten readings, this 1.3 us; issue 27)
_DIGITS_AS_NINES = bytes.maketrans(b"012345678", b"999999999")
_NINETEEN_DIGITS = b"9" * 19
# A lone surrogate (JSON lets "\ud800" through) is not text SQLite can store: a reading holding
# one was refused by the store's UTF-8 encoder, which failed its whole transaction; over MQTT the
# writer then retried that batch forever.
_SURROGATE = re.compile("[\ud800-\udfff]")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


class ReadingRefused(ValueError):
    """One reading that cannot be stored: it goes to the dead letters with this reason."""


@dataclass(frozen=True)
class Reading:
    """A checked reading: its client id (None: the service names it) and its values in the
    order of the stream's columns."""

    id: str | None
    values: tuple[Any, ...]


def stream_columns(stream: StreamRow) -> list[Column]:
    """A stream's declared columns, typed."""
    return [Column(c["name"], c["type"]) for c in stream.columns]  # type: ignore[arg-type]


def column_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a stream's column (None: it can)."""
    if not _NAME.fullmatch(name):
        return f"column name {name!r} must match {_NAME.pattern}"
    if name in RESERVED:
        return f"column name {name!r} is reserved (received_at is stamped, id names a reading)"
    return None


def file_columns(columns: Sequence[Column]) -> list[Column]:
    """The columns of a chunk's file: ``received_at`` then the declared ones."""
    return [Column(RECEIVED_AT, "integer"), *columns]


def stream_schema_hash(columns: Sequence[Column]) -> str:
    """The schema hash of a stream's files, as :mod:`ml.datasets` defines it (0x hex)."""
    return to_hex(compute_schema_hash(file_columns(columns)))


def _check_value(column: Column, value: Any, max_chars: int) -> Any:
    kind = column.type
    if value is None:
        raise ReadingRefused(f"column {column.name!r} is null")
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ReadingRefused(f"column {column.name!r} must be a boolean, got {value!r:.60}")
        return value
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ReadingRefused(f"column {column.name!r} must be an integer, got {value!r:.60}")
        if abs(value) >= 2**63:
            raise ReadingRefused(f"column {column.name!r}: {value} is outside int64")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ReadingRefused(f"column {column.name!r} must be a number, got {value!r:.60}")
        number = float(value)
        if not math.isfinite(number):
            raise ReadingRefused(f"column {column.name!r} must be a finite number")
        return number
    if not isinstance(value, str):
        raise ReadingRefused(f"column {column.name!r} must be a string, got {value!r:.60}")
    if not value:
        raise ReadingRefused(f"column {column.name!r} is an empty string (CSV reads it as missing)")
    if len(value) > max_chars:
        raise ReadingRefused(
            f"column {column.name!r} has {len(value)} characters, at most {max_chars}"
        )
    if _SURROGATE.search(value):
        raise ReadingRefused(f"column {column.name!r} holds a lone surrogate (not Unicode text)")
    return value


def check_reading(obj: Any, columns: Sequence[Column], *, max_chars: int) -> Reading:
    """The reading ``obj`` (a parsed JSON value) checked against ``columns``; raises
    :class:`ReadingRefused` with the first reason it is not one."""
    if not isinstance(obj, dict):
        raise ReadingRefused(f"a reading is a JSON object, got {type(obj).__name__}")
    reading_id = obj.get("id")
    if reading_id is not None:
        if isinstance(reading_id, int) and not isinstance(reading_id, bool):
            reading_id = str(reading_id)
        if not isinstance(reading_id, str) or not 1 <= len(reading_id) <= ID_MAX_CHARS:
            raise ReadingRefused(
                f"id must be an integer or a string of 1 to {ID_MAX_CHARS} characters"
            )
        if _SURROGATE.search(reading_id):
            raise ReadingRefused("id holds a lone surrogate (not Unicode text)")
    names = {c.name for c in columns}
    unknown = sorted(k for k in obj if k not in names and k != "id")
    if unknown:
        raise ReadingRefused(f"unknown column(s) {', '.join(map(repr, unknown[:5]))}")
    missing = [c.name for c in columns if c.name not in obj]
    if missing:
        raise ReadingRefused(f"missing column(s) {', '.join(map(repr, missing[:5]))}")
    values = tuple(_check_value(c, obj[c.name], max_chars) for c in columns)
    return Reading(reading_id, values)


class RowEncoder:
    """:func:`check_reading` and the row's JSON in one pass, fast for the readings that pass:
    a reading that does not fit the fast path is checked again by :func:`check_reading`, which
    gives the reason (the tests check both agree on every value)."""

    def __init__(self, columns: Sequence[Column], *, max_chars: int) -> None:
        self._columns = list(columns)
        self._plan = [(c.name, c.type) for c in columns]
        self._max_chars = max_chars

    def encode(self, obj: Any) -> tuple[str | None, str]:
        """The reading's id (None: none given) and its values as a JSON array, in column
        order; raises :class:`ReadingRefused`."""
        if type(obj) is not dict:
            return self._slow(obj)
        reading_id = obj.get("id")
        if len(obj) != len(self._plan) + ("id" in obj):
            return self._slow(obj)
        if reading_id is not None and (
            type(reading_id) is not str
            or not 1 <= len(reading_id) <= ID_MAX_CHARS
            or not (reading_id.isascii() or _SURROGATE.search(reading_id) is None)
        ):
            return self._slow(obj)
        parts = []
        for name, kind in self._plan:
            value = obj.get(name)
            kind_of = type(value)
            if kind == "float" and kind_of is float and value - value == 0:  # finite
                parts.append(repr(value))
            elif kind == "float" and kind_of is int and -(2**53) <= value <= 2**53:
                parts.append(repr(float(value)))
            elif kind == "integer" and kind_of is int and -(2**63) < value < 2**63:
                parts.append(str(value))
            elif kind == "boolean" and kind_of is bool:
                parts.append("true" if value else "false")
            elif (
                kind == "string"
                and kind_of is str
                and 0 < len(value) <= self._max_chars
                and (value.isascii() or _SURROGATE.search(value) is None)
            ):
                parts.append(_encode_string(value))
            else:
                return self._slow(obj)
        return reading_id, "[" + ",".join(parts) + "]"

    def _slow(self, obj: Any) -> tuple[str | None, str]:
        reading = check_reading(obj, self._columns, max_chars=self._max_chars)
        return reading.id, json.dumps(reading.values, separators=(",", ":"))


def loads_json(data: bytes | str) -> Any:
    """``json.loads(data)``, by orjson when it can (about 5x faster on a message of readings).

    orjson reads an integer past 64 bits as a float, where ``json`` keeps it exact (and a
    reading's check refuses it as outside int64): a text holding 19 digits in a row, which any
    such integer does, is read by :func:`json.loads` (an integer of 18 digits or fewer fits in
    64 bits). Whatever orjson refuses (``NaN``, lone surrogates, a byte order mark, text that
    is not JSON) is read again by :func:`json.loads` too, so the value, or the error and its
    message (a dead letter's reason), is always :func:`json.loads`'s (the tests compare them
    on generated JSON)."""
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "replace")
    if _NINETEEN_DIGITS in raw.translate(_DIGITS_AS_NINES):
        return json.loads(data)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


@dataclass(frozen=True, slots=True)
class MessageReadings:
    """One MQTT message's readings, parsed.

    ``key`` is :func:`message_key`: the ``i``-th reading of the message, if it carries no
    ``id``, is named ``<key>:<i>``, so a redelivered message is stored once
    (:mod:`api.service.mqtt_ingest`). A payload that is not JSON is one item, the
    :class:`ReadingRefused` saying why, and ``text`` is what of it a dead letter shows.
    ``checked``: the readings checked and encoded already, ``(id, row)`` each, ids given
    (:class:`api.streaming.message_rows.MessageEncoder`; ``key`` and ``readings`` are then
    empty)."""

    key: str
    readings: list[Any]
    text: str | None = None
    checked: list[tuple[str, str]] | None = None

    @property
    def count(self) -> int:
        return len(self.checked) if self.checked is not None else len(self.readings)


def message_key(topic: str, payload: bytes) -> str:
    """``mqtt:`` + SHA-256 of (topic, NUL, payload): what names a message's readings that carry
    no id, the same on every delivery."""
    return "mqtt:" + hashlib.sha256(topic.encode() + b"\0" + payload).hexdigest()


def message_readings(topic: str, payload: bytes) -> MessageReadings:
    """An MQTT message's readings: one JSON object, or a JSON array of them."""
    key = message_key(topic, payload)
    try:
        parsed = loads_json(payload)
    except (ValueError, RecursionError) as exc:
        text = payload[:1000].decode("utf-8", "replace")
        return MessageReadings(key, [ReadingRefused(f"not JSON: {exc}")], text)
    return MessageReadings(key, parsed if type(parsed) is list else [parsed])


def split_body(body: bytes) -> list[tuple[str, Any]] | None:
    """A request body as ``(text, parsed)`` per reading: a JSON array gives its items, any other
    body is JSON lines (blank lines skipped); a line that is not JSON is parsed as
    :class:`ReadingRefused`. None when the body is a JSON array that does not parse (nothing in
    it can be told apart) or is not UTF-8."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except (ValueError, RecursionError):
            return None
        if not isinstance(items, list):
            return None
        return [(json.dumps(item)[:1000], item) for item in items]
    out: list[tuple[str, Any]] = []
    for line in stripped.splitlines():
        if not line.strip():
            continue
        try:
            out.append((line[:1000], json.loads(line)))
        except (ValueError, RecursionError) as exc:
            out.append((line[:1000], ReadingRefused(f"not JSON: {exc}")))
    return out


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def chunk_csv(columns: Sequence[Column], rows: Sequence[tuple[int, Sequence[Any]]]) -> bytes:
    """A chunk's file: the header, then ``received_at`` and the values of each reading, in the
    order given. The same readings always give the same bytes (a seal that is redone after a
    crash registers the very file it would have)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.name for c in file_columns(columns)])
    for received_at, values in rows:
        writer.writerow([str(received_at), *(_cell(v) for v in values)])
    return out.getvalue().encode("utf-8")


def chunk_csv_stored(columns: Sequence[Column], rows: Sequence[tuple[int, str]]) -> bytes:
    """:func:`chunk_csv` of rows as the store keeps them (``received_at``, the values' JSON
    array as :class:`RowEncoder` wrote it).

    When no column is a string, each value's JSON token is already its CSV cell (an integer's
    digits, a float's ``repr``, ``true``/``false``: what :func:`_cell` writes, and nothing a CSV
    writer quotes), so a row is its arrival and its array without the brackets: no parsing
    (issue 27: parsing and writing each row again was a fifth of a seal's CPU). A stream with a
    string column goes through :func:`chunk_csv` (the tests check both give the same bytes)."""
    if any(c.type == "string" for c in columns):
        return chunk_csv(columns, [(received, loads_json(row)) for received, row in rows])
    return chunk_csv_text(columns, "\n".join([f"{received},{row[1:-1]}" for received, row in rows]))


def chunk_csv_text(columns: Sequence[Column], text: str) -> bytes:
    """:func:`chunk_csv_stored` of a stream without string columns, from its rows as
    :meth:`api.streaming.store.StreamStore.chunk_text` gives them (a line each: arrival, a
    comma, the values' array without its brackets)."""
    assert not any(c.type == "string" for c in columns)
    head = io.StringIO()
    csv.writer(head, lineterminator="\n").writerow([c.name for c in file_columns(columns)])
    return (head.getvalue() + (text + "\n" if text else "")).encode("utf-8")

"""The pure-Python scan engine: the csv module and the rules of :mod:`ml.datasets`, streaming.

Why it exists beside the native core (``ml/_csvcore.c``): it is the specification written as
code. It reads a file the way ``ml.datasets`` always has (strict UTF-8, the csv module's strict
dialect over universal newlines, the same typing and canonical encoding, the same error for the
same problem), only without holding the file or its rows: memory stays flat. The tests run both
engines on the same inputs and compare every hash, value and error; :mod:`ml.scanning` falls back
to this engine when the native one is not built (about 30 times slower).

Precedence of errors, as in ``ml.datasets`` where the whole file was decoded before it was
parsed: an undecodable byte anywhere, then a NUL byte anywhere, then the first CSV or limit
error in file order. Hence two passes over the bytes for inference: validation, then parsing.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from ml._csvrules import check_header, is_integer_token, is_number, parse_value
from ml.columns import ColumnType, Limits, Value, canonical_row_bytes
from ml.errors import (
    DatasetChanged,
    MalformedCsv,
    NoHeader,
    NoRows,
    RaggedRow,
    TooLarge,
    UndecodableText,
)
from ml.hashing import sha256_bytes

__all__ = ["NAME", "Batch", "Inferred", "encode", "infer"]

NAME = "python"
_CHUNK = 1 << 20
_BATCH = 4096
_NUL_DETAIL = "it contains a NUL byte (a binary file?)"


@dataclass(frozen=True)
class Inferred:
    """What inference found: the header, each column's type and the number of data rows."""

    header: tuple[str, ...]
    types: tuple[ColumnType, ...]
    rows: int


@dataclass(frozen=True)
class Batch:
    """Consecutive data rows from :func:`encode`: digests (32 bytes each), values, start lines."""

    digests: bytes
    rows: list[tuple[Value, ...]]
    lines: list[int]
    locators: list[int]


class _Keep(io.RawIOBase):
    """A raw view of a stream that a TextIOWrapper may close without closing the stream."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._source.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def check_bytes(source: BinaryIO, on_chunk: Callable[[bytes], None] | None = None) -> None:
    """Strict UTF-8 and no NUL byte, over the whole stream (errors in ``ml.datasets``' order)."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = newlines = 0
    nul_line: int | None = None
    while True:
        chunk = source.read(_CHUNK)
        final = not chunk
        try:
            decoder.decode(chunk, final=final)
        except UnicodeDecodeError as exc:
            start = offset + len(chunk) - len(exc.object) + exc.start
            before = chunk[: max(0, start - offset)].count(b"\n")
            raise UndecodableText(line=newlines + before + 1, offset=start) from None
        if final:
            break
        if on_chunk is not None:
            on_chunk(chunk)
        if nul_line is None and (at := chunk.find(b"\x00")) >= 0:
            nul_line = newlines + chunk[:at].count(b"\n") + 1
        newlines += chunk.count(b"\n")
        offset += len(chunk)
    if nul_line is not None:
        raise MalformedCsv(line=nul_line, detail=_NUL_DETAIL)


class _Lines:
    """The text's lines (split at \\n, \\r\\n or \\r, as the csv module expects), the BOM removed,
    with the byte offset at which the next unread line starts."""

    def __init__(self, source: BinaryIO, *, at_start: bool) -> None:
        self._text = io.TextIOWrapper(_Keep(source), encoding="utf-8", newline="")  # type: ignore[arg-type]
        self._first = at_start
        self.offset = 0

    def __iter__(self) -> Iterator[str]:
        for line in self._text:
            size = len(line.encode("utf-8"))
            if self._first:
                self._first = False
                line = line.removeprefix("\ufeff")
                if not line:
                    self.offset += size
                    continue
            self.offset += size
            yield line


def _records(reader: Any, lines: _Lines, limits: Limits) -> Iterator[tuple[int, int, list[str]]]:
    """Yield ``(first line, byte offset, fields)`` per record, mapping csv errors to ours."""
    while True:
        start, offset = reader.line_num + 1, lines.offset
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            detail = str(exc)
            if "field larger than field limit" in detail:
                raise TooLarge(limit="max_field_chars", maximum=limits.max_field_chars) from None
            raise MalformedCsv(line=max(reader.line_num, start), detail=detail) from None
        for value in record:
            if len(value) > limits.max_field_chars:
                raise TooLarge(
                    limit="max_field_chars", maximum=limits.max_field_chars, actual=len(value)
                )
        yield start, offset, record


def _reader(lines: _Lines) -> Any:
    return csv.reader(iter(lines), delimiter=",", quotechar='"', doublequote=True, strict=True)


_BOOL, _INT, _FLOAT, _STRING = 1, 2, 4, 8


def infer(source: BinaryIO, limits: Limits, on_chunk: Callable[[bytes], None] | None) -> Inferred:
    """Validate the whole stream and infer its columns' types (two reads of it)."""
    check_bytes(source, on_chunk)
    source.seek(0)
    lines = _Lines(source, at_start=True)
    reader = _reader(lines)
    records = _records(reader, lines, limits)
    first = next(records, None)
    if first is None:
        raise NoHeader("the file holds no text")
    header = check_header(first[2], limits.max_columns)
    width = len(header)
    flags = [0] * width
    rows = 0
    for line, _, record in records:
        if len(record) != width:
            raise RaggedRow(line=line, expected=width, actual=len(record))
        if rows >= limits.max_rows:
            raise TooLarge(limit="max_rows", maximum=limits.max_rows)
        if (rows + 1) * width > limits.max_cells:
            raise TooLarge(limit="max_cells", maximum=limits.max_cells)
        for position, token in enumerate(record):
            state = flags[position]
            if token == "" or state & _STRING:
                continue
            if token.lower() in ("true", "false"):
                state |= _BOOL
            elif is_integer_token(token):
                state |= _INT
            elif is_number(token):
                state |= _FLOAT
            else:
                state |= _STRING
            if state & _BOOL and state & (_INT | _FLOAT):
                state |= _STRING
            flags[position] = state
        rows += 1
    if rows == 0:
        raise NoRows()
    return Inferred(tuple(header), tuple(_type_of(state) for state in flags), rows)


def _type_of(state: int) -> ColumnType:
    if state & _STRING:
        return "string"
    if state & _BOOL:
        return "boolean"
    if state & _FLOAT:
        return "float"
    if state & _INT:
        return "integer"
    return "string"


def encode(
    source: BinaryIO,
    types: tuple[ColumnType, ...],
    *,
    skip_header: bool = True,
    max_rows: int | None = None,
    digests: bool = True,
    rows: bool = False,
    lines: bool = False,
    stride: int = 0,
    start_offset: int = 0,
) -> Iterator[Batch]:
    """Parse the data rows with known column types; yield their digests and values in batches.

    The stream must be positioned at ``start_offset``: the file's start (``skip_header``) or
    the first byte of a data row (a locator), then ``max_rows`` rows are read.
    """
    text = _Lines(source, at_start=start_offset == 0)
    text.offset = start_offset
    reader = _reader(text)
    limits = Limits(max_field_chars=csv.field_size_limit())
    records = _records(reader, text, limits)
    if skip_header:
        header = next(records, None)
        if header is None or len(header[2]) != len(types):
            raise DatasetChanged("the header changed")
    batch = Batch(b"", [], [], [])
    parts: list[bytes] = []
    for count, (line, offset, record) in enumerate(records):
        if max_rows is not None and count >= max_rows:
            break
        if len(record) != len(types):
            raise DatasetChanged(f"row {count} has {len(record)} fields, not {len(types)}")
        values = tuple(parse_value(token, kind) for token, kind in zip(record, types, strict=True))
        if digests:
            parts.append(sha256_bytes(canonical_row_bytes(values)))
        if rows:
            batch.rows.append(values)
        if lines:
            batch.lines.append(line)
        if stride and count % stride == 0:
            batch.locators.append(offset)
        if (count + 1) % _BATCH == 0:
            yield Batch(b"".join(parts), batch.rows, batch.lines, batch.locators)
            batch, parts = Batch(b"", [], [], []), []
    yield Batch(b"".join(parts), batch.rows, batch.lines, batch.locators)

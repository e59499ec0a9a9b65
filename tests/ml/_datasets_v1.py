"""The in-memory CSV parser of ``ml/datasets.py`` as of commit a89b4fa, kept verbatim as the
reference the streaming scan (``ml/scanning.py``, both engines) is compared with: the same bytes
must give the same hashes, rows, lines and errors.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any

from ml.datasets import Column, ColumnType, Dataset, Limits, Value, compute_schema_hash
from ml.errors import (
    DuplicateColumns,
    EmptyFile,
    InvalidColumnName,
    MalformedCsv,
    NoHeader,
    NoRows,
    RaggedRow,
    TooLarge,
    UndecodableText,
)
from ml.hashing import sha256_bytes

__all__ = ["parse_dataset_v1"]

_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_BOOLEAN = frozenset({"true", "false"})
_BOM = "\ufeff"


class _Dialect(csv.Dialect):
    delimiter = ","
    quotechar = '"'
    doublequote = True
    skipinitialspace = False
    lineterminator = "\n"
    quoting = csv.QUOTE_MINIMAL
    strict = True


def parse_dataset_v1(data: bytes, *, limits: Limits = Limits()) -> Dataset:
    """Validate and hash a CSV held in memory (an upload, or a transform's output)."""
    # 1. Size and emptiness, before any decoding work.
    if len(data) > limits.max_bytes:
        raise TooLarge(limit="max_bytes", maximum=limits.max_bytes, actual=len(data))
    if not data:
        raise EmptyFile()
    content_hash = sha256_bytes(data)

    # 2. Strict UTF-8.
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UndecodableText(line=data.count(b"\n", 0, exc.start) + 1, offset=exc.start) from None
    text = text.removeprefix(_BOM)
    nul = data.find(b"\x00")
    if nul >= 0:
        raise MalformedCsv(
            line=data.count(b"\n", 0, nul) + 1, detail="it contains a NUL byte (a binary file?)"
        )

    # 3. Header, then rows, checking limits as we go.
    reader = csv.reader(io.StringIO(text, newline=""), dialect=_Dialect)
    records = _records(reader, limits)
    header_item = next(records, None)
    if header_item is None:
        raise NoHeader("the file holds no text")
    header = _check_header(header_item[1], limits)
    width = len(header)
    raw_rows: list[list[str]] = []
    lines: list[int] = []
    for line, record in records:
        if len(record) != width:
            raise RaggedRow(line=line, expected=width, actual=len(record))
        if len(raw_rows) >= limits.max_rows:
            raise TooLarge(limit="max_rows", maximum=limits.max_rows)
        if (len(raw_rows) + 1) * width > limits.max_cells:
            raise TooLarge(limit="max_cells", maximum=limits.max_cells)
        raw_rows.append(record)
        lines.append(line)
    if not raw_rows:
        raise NoRows()

    # 4. Types, then parsed values, column by column.
    columns: list[Column] = []
    parsed_columns: list[list[Value]] = []
    for position, name in enumerate(header):
        raw = [row[position] for row in raw_rows]
        kind = _infer_type(raw)
        columns.append(Column(name, kind))
        parsed_columns.append(_parse_column(raw, kind))
    rows = tuple(zip(*parsed_columns, strict=True))
    return Dataset(
        columns=tuple(columns),
        rows=rows,
        lines=tuple(lines),
        content_hash=content_hash,
        schema_hash=compute_schema_hash(columns),
        size=len(data),
    )


def _records(reader: Any, limits: Limits) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(first line number, fields)`` per record, mapping csv errors to ours."""
    while True:
        start = reader.line_num + 1
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
        yield start, record


def _check_header(header: list[str], limits: Limits) -> list[str]:
    if not header:
        raise NoHeader("the first line is blank")
    if len(header) > limits.max_columns:
        raise TooLarge(limit="max_columns", maximum=limits.max_columns, actual=len(header))
    for position, name in enumerate(header, start=1):
        if name == "":
            raise InvalidColumnName(position)
    if all(_NUMBER.fullmatch(name) for name in header):
        raise NoHeader("the first line looks like data (every field is a number)")
    seen: set[str] = set()
    repeated: list[str] = []
    for name in header:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    if repeated:
        raise DuplicateColumns(repeated)
    return header


def _is_number(token: str) -> bool:
    if not _NUMBER.fullmatch(token):
        return False
    return _INTEGER.fullmatch(token) is not None or math.isfinite(float(token))


def _infer_type(raw: Sequence[str]) -> ColumnType:
    saw_bool = saw_int = saw_float = False
    for token in raw:
        if token == "":
            continue
        if token.lower() in _BOOLEAN:
            saw_bool = True
        elif _INTEGER.fullmatch(token):
            saw_int = True
        elif _is_number(token):
            saw_float = True
        else:
            return "string"
        if saw_bool and (saw_int or saw_float):
            return "string"
    if saw_bool:
        return "boolean"
    if saw_float:
        return "float"
    if saw_int:
        return "integer"
    return "string"


def _parse_column(raw: Sequence[str], kind: ColumnType) -> list[Value]:
    if kind == "integer":
        return [None if token == "" else int(token) for token in raw]
    if kind == "float":
        return [None if token == "" else float(token) for token in raw]
    if kind == "boolean":
        return [None if token == "" else token.lower() == "true" for token in raw]
    return [None if token == "" else token for token in raw]

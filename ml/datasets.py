"""Load and validate CSV datasets, and give them the hashes the ledger records.

Why the rules below are strict: a dataset's hashes are recomputed by an auditor with their
own tools, so every choice (what a number is, what a missing value is, how a row is
encoded) is fixed here and written down, never guessed per file.

**File format.** UTF-8 CSV (a leading UTF-8 byte-order mark is ignored), comma delimiter,
``"`` quoting with ``""`` as an escaped quote, ``\\n`` or ``\\r\\n`` line endings, quoted
fields may span lines. The first line is the header: non-empty, unique column names (a
header whose every field is a number is taken as a missing header). Every other line is one
data row with exactly one field per column; a blank line is a ragged row. At least one data
row is required.

**Hashes.** ``content_hash`` is SHA-256 of the exact file bytes (``sha256sum`` prints the
same). ``schema_hash`` is SHA-256 of the canonical JSON (:func:`ml.hashing.canonical_json`)
of ``[{"name": <name>, "type": <type>}, ...]`` in header order. ``row_count`` is the number
of data rows.

**Types.** Each column gets one of four types, inferred from all its non-empty fields:

* ``"boolean"`` - every value is ``true`` or ``false`` (any letter case);
* ``"integer"`` - every value is a JSON integer: ``-?(0|[1-9][0-9]*)`` (so ``007`` or ``+1``
  or `` 1`` are not numbers);
* ``"float"`` - every value is a JSON number (``-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?``)
  that is finite as a double, and at least one is not an integer;
* ``"string"`` - anything else, including a column whose fields are all empty.

An empty field is a missing value (``None``), in every type. Nothing else (``NA``, ``NaN``,
``null``) is treated as missing: in a numeric column such a token makes the column a string
column, and using it as a feature then fails with :class:`~ml.errors.NonNumericColumn`.

**Parsed values.** integer → Python ``int``; float → ``float`` (correctly rounded, integers in
a float column become floats); boolean → ``bool``; string → the field text unchanged;
missing → ``None``.

**Canonical row encoding** (the row Merkle tree's input). For data row ``i`` (0-based, in file
order) the canonical row bytes are ``canonical_json([v_0, v_1, ..., v_{n-1}])``: the JSON array
of the row's parsed values in header order, e.g. ``[100,200,5000]``, ``[5.1,3.5,"setosa"]``,
``[null,true,-0.5]`` (floats as Python ``repr``: ``1.0``, ``1e-05``). The row digest is
``sha256(canonical row bytes)``, 32 bytes. The ledger builds its Merkle tree from leaves
``[i, row_digest_i]`` typed ``["uint256", "bytes32"]``; this module only produces the digests.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from ml.errors import (
    ColumnError,
    DuplicateColumns,
    EmptyFile,
    InvalidColumnName,
    InvalidTarget,
    MalformedCsv,
    MissingValues,
    NoHeader,
    NonNumericColumn,
    NoRows,
    RaggedRow,
    TooLarge,
    UndecodableText,
    UnknownColumn,
)
from ml.hashing import canonical_json, sha256_bytes, to_hex

__all__ = [
    "COLUMN_TYPES",
    "NUMERIC_TYPES",
    "Column",
    "ColumnType",
    "Dataset",
    "Limits",
    "Value",
    "canonical_row_bytes",
    "compute_schema_hash",
    "load_dataset",
    "parse_dataset",
    "render_csv",
    "render_value",
    "validate_columns",
]

ColumnType = Literal["integer", "float", "string", "boolean"]
COLUMN_TYPES: tuple[ColumnType, ...] = get_args(ColumnType)
# Columns a model can take as features: booleans count as 0/1.
NUMERIC_TYPES: frozenset[str] = frozenset({"integer", "float", "boolean"})

Value = int | float | str | bool | None

_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_BOOLEAN = frozenset({"true", "false"})
_BOM = "\ufeff"


class _Dialect(csv.Dialect):
    """The one CSV dialect read and written: RFC 4180 with ``\\n`` line endings on output."""

    delimiter = ","
    quotechar = '"'
    doublequote = True
    skipinitialspace = False
    lineterminator = "\n"
    quoting = csv.QUOTE_MINIMAL
    strict = True


@dataclass(frozen=True)
class Limits:
    """Upper bounds on an uploaded dataset, checked while it is parsed.

    Why: a dataset is held in memory as Python values (about ten times its file size), so
    the service must refuse oversized uploads with a clear error rather than run out of
    memory. ``max_field_chars`` cannot exceed the csv module's own field limit.
    """

    max_bytes: int = 64 * 1024 * 1024
    max_rows: int = 1_000_000
    max_columns: int = 1_000
    max_cells: int = 10_000_000
    max_field_chars: int = 10_000

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_rows", "max_columns", "max_cells", "max_field_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive integer, got {value!r}")
        if self.max_field_chars > csv.field_size_limit():
            raise ValueError(
                f"Limits.max_field_chars cannot exceed the csv field limit "
                f"{csv.field_size_limit()}, got {self.max_field_chars}"
            )


@dataclass(frozen=True)
class Column:
    """A column's name and inferred type (one of :data:`COLUMN_TYPES`)."""

    name: str
    type: ColumnType

    def __post_init__(self) -> None:
        if self.type not in COLUMN_TYPES:
            raise ValueError(f"column type must be one of {COLUMN_TYPES}, got {self.type!r}")

    @property
    def is_numeric(self) -> bool:
        """True when a model can use the column as a feature."""
        return self.type in NUMERIC_TYPES

    def to_json(self) -> dict[str, str]:
        """The column as it appears in the schema document that ``schema_hash`` covers."""
        return {"name": self.name, "type": self.type}


def canonical_row_bytes(row: Sequence[Value]) -> bytes:
    """Encode one row's parsed values as canonical JSON (the module docstring has the rule)."""
    return canonical_json(list(row))


@dataclass(frozen=True)
class Dataset:
    """A parsed, validated dataset: its schema, rows and hashes.

    Built by :func:`load_dataset` or :func:`parse_dataset`; rows hold parsed values (see the
    module docstring), one tuple per data row in file order. ``lines[i]`` is the file line on
    which row ``i`` starts, for error messages.
    """

    columns: tuple[Column, ...]
    rows: tuple[tuple[Value, ...], ...] = field(repr=False)
    lines: tuple[int, ...] = field(repr=False)
    content_hash: bytes
    schema_hash: bytes
    size: int
    path: Path | None = None

    @property
    def row_count(self) -> int:
        """Number of data rows (the header is not a row)."""
        return len(self.rows)

    @property
    def column_names(self) -> tuple[str, ...]:
        """Column names in header order."""
        return tuple(column.name for column in self.columns)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {column.name: position for position, column in enumerate(self.columns)}

    def index(self, name: str) -> int:
        """Position of column ``name``; :class:`~ml.errors.UnknownColumn` if absent."""
        try:
            return self._index[name]
        except KeyError:
            raise UnknownColumn(name, self.column_names) from None

    def column(self, name: str) -> Column:
        """The :class:`Column` called ``name``; :class:`~ml.errors.UnknownColumn` if absent."""
        return self.columns[self.index(name)]

    def values(self, name: str) -> tuple[Value, ...]:
        """All parsed values of one column, in row order."""
        position = self.index(name)
        return tuple(row[position] for row in self.rows)

    def numeric_array(self, names: Sequence[str]) -> np.ndarray:
        """A float64 matrix (rows x ``names``) of numeric columns; missing values are NaN.

        Raises :class:`~ml.errors.NonNumericColumn` for a string column.
        """
        positions = []
        for name in names:
            column = self.column(name)
            if not column.is_numeric:
                raise _non_numeric(self, name)
            positions.append(self.index(name))
        matrix = np.empty((self.row_count, len(positions)), dtype=np.float64)
        for r, row in enumerate(self.rows):
            for c, position in enumerate(positions):
                value = row[position]
                matrix[r, c] = np.nan if value is None else float(value)
        return matrix

    def canonical_row_bytes(self, i: int) -> bytes:
        """Canonical bytes of data row ``i`` (0-based)."""
        return canonical_row_bytes(self.rows[i])

    def row_digests(self) -> list[bytes]:
        """``sha256(canonical_row_bytes(row_i))`` for every row, in order: the Merkle leaves."""
        return [sha256_bytes(canonical_row_bytes(row)) for row in self.rows]

    def __repr__(self) -> str:
        schema = ", ".join(f"{column.name}:{column.type}" for column in self.columns)
        return (
            f"Dataset(sha256:{self.content_hash.hex()}, rows={self.row_count}, "
            f"columns=[{schema}], path={self.path})"
        )

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description: hashes as ``0x`` hex, row count, size and schema."""
        return {
            "content_hash": to_hex(self.content_hash),
            "schema_hash": to_hex(self.schema_hash),
            "row_count": self.row_count,
            "size": self.size,
            "columns": [column.to_json() for column in self.columns],
        }


def compute_schema_hash(columns: Sequence[Column]) -> bytes:
    """SHA-256 of the canonical JSON list of ``{"name", "type"}`` objects, in header order."""
    return sha256_bytes(canonical_json([column.to_json() for column in columns]))


def load_dataset(path: str | os.PathLike[str], limits: Limits = Limits()) -> Dataset:
    """Read, validate and hash the CSV file at ``path``.

    The bytes are read once (never more than ``limits.max_bytes + 1``) and both hashed and
    parsed from memory, so the content hash is guaranteed to describe the parsed data even
    if the file changes meanwhile.
    """
    file_path = Path(path)
    with open(file_path, "rb") as handle:
        data = handle.read(limits.max_bytes + 1)
        if len(data) > limits.max_bytes:
            actual = os.fstat(handle.fileno()).st_size
            raise TooLarge(limit="max_bytes", maximum=limits.max_bytes, actual=actual)
    return parse_dataset(data, limits=limits, path=file_path)


def parse_dataset(
    data: bytes, *, limits: Limits = Limits(), path: str | os.PathLike[str] | None = None
) -> Dataset:
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
        path=Path(path) if path is not None else None,
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


def render_value(value: Value) -> str:
    """Write a parsed value back as a CSV field that parses to the same value and type."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return value


def render_csv(names: Sequence[str], rows: Sequence[Sequence[Value]]) -> bytes:
    """Write a dataset in the one output dialect: UTF-8, no BOM, ``\\n``, minimal quoting.

    Deterministic: the same names and values always give the same bytes (floats use
    ``repr``, booleans ``true``/``false``, missing values empty fields).
    """
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, dialect=_Dialect)
    writer.writerow(names)
    for row in rows:
        writer.writerow([render_value(value) for value in row])
    return buffer.getvalue().encode("utf-8")


def _non_numeric(dataset: Dataset, name: str) -> NonNumericColumn:
    column = dataset.column(name)
    position = dataset.index(name)
    for line, row in zip(dataset.lines, dataset.rows, strict=True):
        value = row[position]
        if value is not None and not (isinstance(value, str) and _is_number(value)):
            return NonNumericColumn(name, kind=column.type, line=line, value=str(value))
    return NonNumericColumn(name, kind=column.type)


def _check_complete(dataset: Dataset, name: str) -> None:
    position = dataset.index(name)
    missing = [
        line for line, row in zip(dataset.lines, dataset.rows, strict=True) if row[position] is None
    ]
    if missing:
        raise MissingValues(name, line=missing[0], count=len(missing))


def validate_columns(
    dataset: Dataset, target: str, features: Sequence[str] | None = None
) -> tuple[str, ...]:
    """Check that ``target`` and ``features`` can train a model; return the feature list.

    ``features=None`` means every column except the target, in header order. Features must
    be numeric (:data:`NUMERIC_TYPES`), distinct and not the target; neither features nor
    target may have missing values. Task-specific checks on the target (numeric for
    regression, at least two classes for classification) belong to :mod:`ml.training`.
    """
    dataset.column(target)
    if features is None:
        chosen = tuple(name for name in dataset.column_names if name != target)
    else:
        if isinstance(features, str):
            raise ColumnError("features must be a list of column names, not one string")
        chosen = tuple(features)
    if not chosen:
        raise ColumnError("no feature columns: name at least one column besides the target")
    for name in chosen:
        dataset.column(name)
    if len(set(chosen)) != len(chosen):
        repeated = sorted({name for name in chosen if chosen.count(name) > 1})
        raise ColumnError(f"feature column(s) listed twice: {', '.join(map(repr, repeated))}")
    if target in chosen:
        raise InvalidTarget(f"column {target!r} cannot be both the target and a feature")
    for name in chosen:
        if not dataset.column(name).is_numeric:
            raise _non_numeric(dataset, name)
    for name in (*chosen, target):
        _check_complete(dataset, name)
    return chosen

"""Load and validate CSV datasets, and give them the hashes the ledger records.

Why it runs past 400 lines: the typing rules, the canonical row encoding and the limits are one
format that an auditor re-implements; the streaming scanner (``ml/scanning.py``) keeps to it.

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

**Reading.** Files are read by :mod:`ml.scanning`, streaming, with these rules (a native engine
and a pure-Python one, tested against each other and against the parser this module had before):
registration never holds the file or its rows. :func:`load_dataset` holds the parsed rows, for
training; :func:`estimate_dataset_bytes` says how much memory that takes before it is done.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ml._csvrules import header_warnings, is_number
from ml.columns import (
    COLUMN_TYPES,
    NUMERIC_TYPES,
    Column,
    ColumnType,
    Limits,
    Value,
    canonical_row_bytes,
    compute_schema_hash,
)
from ml.errors import (
    ColumnError,
    InvalidTarget,
    MissingValues,
    NonNumericColumn,
    UnknownColumn,
)
from ml.hashing import sha256_bytes, to_hex
from ml.scanning import Table, read_table

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
    "csv_writer",
    "estimate_dataset_bytes",
    "header_warnings",
    "load_dataset",
    "parse_dataset",
    "render_csv",
    "render_value",
    "validate_columns",
]


class _Dialect(csv.Dialect):
    """The one CSV dialect written (and read, by :mod:`ml._csvref`): ``\\n`` line endings."""

    delimiter = ","
    quotechar = '"'
    doublequote = True
    skipinitialspace = False
    lineterminator = "\n"
    quoting = csv.QUOTE_MINIMAL
    strict = True


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


def load_dataset(path: str | os.PathLike[str], limits: Limits = Limits()) -> Dataset:
    """Read, validate and hash the CSV file at ``path``, and hold its rows in memory.

    The file is read twice, a chunk at a time (:func:`ml.scanning.read_table`), and both reads
    are hashed and compared, so the content hash is guaranteed to describe the parsed data even
    if the file changes meanwhile (:class:`~ml.errors.DatasetChanged`). Only the parsed rows are
    held: :func:`estimate_dataset_bytes` says how much memory that takes, before loading.
    """
    file_path = Path(path)
    return _from_table(read_table(file_path, limits), file_path)


def parse_dataset(
    data: bytes, *, limits: Limits = Limits(), path: str | os.PathLike[str] | None = None
) -> Dataset:
    """Validate and hash a CSV held in memory (an upload, or a transform's output)."""
    return _from_table(read_table(data, limits), Path(path) if path is not None else None)


def _from_table(table: Table, path: Path | None) -> Dataset:
    schema = table.schema
    return Dataset(
        columns=schema.columns,
        rows=table.rows,
        lines=table.lines,
        content_hash=schema.content_hash,
        schema_hash=schema.schema_hash,
        size=schema.size,
        path=path,
    )


# Bytes CPython takes for the parts of a loaded Dataset (64-bit, checked with tracemalloc in
# tests/ml/test_ml_memory_estimate.py): a row's tuple (40 + 8 per value) and its slot in
# ``rows``, its start line (an int and its slot in ``lines``), and a value: an int or a float
# object, or a str (up to 80 bytes plus its text, whose UTF-8 is in the file). Booleans, None
# and small ints are shared objects, counted as numbers here. Plus the scan's buffers.
_ROW_BYTES = 40 + 8 + 36
_VALUE_BYTES = 8
_NUMBER_BYTES = 32
_STRING_BYTES = 80
_SCAN_BYTES = 16 << 20


def estimate_dataset_bytes(columns: Sequence[Column], row_count: int, size: int) -> int:
    """An estimate, from above, of the memory :func:`load_dataset` takes for such a file.

    Why: training still holds the table as Python values, and a file of a few hundred
    megabytes can need gigabytes; the service refuses before loading rather than let the
    process run out of memory. Counts every row's tuple and start line, every value's object,
    and the file's size for the text of string values (exact for ASCII; text mixing ASCII with
    characters beyond U+FFFF can take up to four times its UTF-8 size as Python strings).
    """
    per_row = _ROW_BYTES + _VALUE_BYTES * len(columns)
    for column in columns:
        per_row += _STRING_BYTES if column.type == "string" else _NUMBER_BYTES
    strings = size if any(column.type == "string" for column in columns) else 0
    return row_count * per_row + strings + _SCAN_BYTES


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


def csv_writer(stream: TextIO) -> Any:
    """A ``csv.writer`` in the one output dialect (for writers that stream, like transforms)."""
    return csv.writer(stream, dialect=_Dialect)


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
        if value is not None and not (isinstance(value, str) and is_number(value)):
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

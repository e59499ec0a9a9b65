"""The vocabulary every dataset module shares: column types, parsed values, the limits on a
file, and the canonical row and schema encodings (:mod:`ml.datasets` writes down the rules).

Why its own module: the scanners (:mod:`ml.scanning`, :mod:`ml._scan_engines`,
:mod:`ml._csvref`) and :mod:`ml.datasets` all speak it, and :mod:`ml.datasets` builds on the
scanners, so the words they share live below both.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from ml.hashing import canonical_json, sha256_bytes

__all__ = [
    "COLUMN_TYPES",
    "NUMERIC_TYPES",
    "Column",
    "ColumnType",
    "Limits",
    "Value",
    "canonical_row_bytes",
    "compute_schema_hash",
]

ColumnType = Literal["integer", "float", "string", "boolean"]
COLUMN_TYPES: tuple[ColumnType, ...] = get_args(ColumnType)
# Columns a model can take as features: booleans count as 0/1.
NUMERIC_TYPES: frozenset[str] = frozenset({"integer", "float", "boolean"})

Value = int | float | str | bool | None


@dataclass(frozen=True)
class Limits:
    """Upper bounds on a dataset file, checked while it is scanned.

    Why: a scan (:mod:`ml.scanning`) streams, so these bound the work and the disk a file may
    ask for, not the memory of registering it; the defaults admit files of a few GiB with
    hundreds of millions of rows. Loading a file into memory (:func:`load_dataset`, for
    training) is bounded separately, by :func:`estimate_dataset_bytes`. ``max_field_chars``
    cannot exceed the csv module's own field limit.
    """

    max_bytes: int = 4 * 1024**3
    max_rows: int = 500_000_000
    max_columns: int = 1_000
    max_cells: int = 1_000_000_000
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


def compute_schema_hash(columns: Sequence[Column]) -> bytes:
    """SHA-256 of the canonical JSON list of ``{"name", "type"}`` objects, in header order."""
    return sha256_bytes(canonical_json([column.to_json() for column in columns]))

"""The in-memory transform engine of ``ml/transforms.py`` as of commit a89b4fa, kept verbatim as
the reference the streaming engine (``ml/_transform_engine.py``) is compared with: the same spec
on the same parent must give the same bytes and the same error, step for step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.datasets import Dataset, Value, render_csv
from ml.errors import EmptyResult, InvalidTransform, NonNumericColumn, UnknownColumn
from ml.hashing import canonical_json
from ml.transforms import ClipOutliers, DropDuplicates, DropMissing, FilterRows, SelectColumns, Step

__all__ = ["apply_transform_v1"]


@dataclass
class _Table:
    """Mutable working copy while a spec is applied; never escapes this module."""

    names: list[str]
    types: list[str]
    rows: list[tuple[Value, ...]]

    def position(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise UnknownColumn(name, self.names) from None


def apply_transform_v1(dataset: Dataset, spec: Any) -> bytes:
    """Run ``spec`` on ``dataset`` and return the derived CSV file's bytes.

    Deterministic: the output depends only on the parent's parsed rows and the spec.
    """
    table = _Table(
        names=list(dataset.column_names),
        types=[column.type for column in dataset.columns],
        rows=list(dataset.rows),
    )
    for index, step in enumerate(spec.steps, start=1):
        _apply_step(table, step, index)
        if not table.rows:
            raise EmptyResult(step=index)
    return render_csv(table.names, table.rows)


def _apply_step(table: _Table, step: Step, index: int) -> None:
    if isinstance(step, DropDuplicates | DropMissing):
        names = table.names if step.columns is None else step.columns
        positions = [table.position(name) for name in names]
        if isinstance(step, DropMissing):
            table.rows = [r for r in table.rows if all(r[p] is not None for p in positions)]
            return
        seen: set[bytes] = set()
        kept = []
        for row in table.rows:
            key = canonical_json([row[p] for p in positions])
            if key not in seen:
                seen.add(key)
                kept.append(row)
        table.rows = kept
    elif isinstance(step, SelectColumns):
        positions = [table.position(name) for name in step.columns]
        table.names = [table.names[p] for p in positions]
        table.types = [table.types[p] for p in positions]
        table.rows = [tuple(row[p] for p in positions) for row in table.rows]
    elif isinstance(step, ClipOutliers):
        if step.columns is None:
            names = [n for n, t in zip(table.names, table.types, strict=True) if t in _CLIPPABLE]
        else:
            names = list(step.columns)
        for name in names:
            position = table.position(name)
            if table.types[position] not in _CLIPPABLE:
                raise NonNumericColumn(name, kind=table.types[position])
            _clip_column(table, position, step)
    else:
        _filter(table, step, index)


_CLIPPABLE = frozenset({"integer", "float"})


def _clip_column(table: _Table, position: int, step: ClipOutliers) -> None:
    present = [row[position] for row in table.rows if row[position] is not None]
    if not present:
        return
    values = np.asarray(present, dtype=np.float64)
    if step.method == "iqr":
        q1, q3 = (float(q) for q in np.percentile(values, [25.0, 75.0]))
        spread = q3 - q1
        low, high = q1 - step.factor * spread, q3 + step.factor * spread
    else:
        mean, std = float(np.mean(values)), float(np.std(values))
        low, high = mean - step.factor * std, mean + step.factor * std
    bounds: tuple[Any, Any] = (low, high)
    if table.types[position] == "integer":
        int_low, int_high = math.ceil(low), math.floor(high)
        if int_low <= int_high:
            bounds = (int_low, int_high)
        else:
            table.types[position] = "float"
    low_b, high_b = bounds
    as_float = table.types[position] == "float"
    clipped = []
    for row in table.rows:
        value = row[position]
        if value is not None:
            if as_float:
                value = float(value)
            value = min(max(value, low_b), high_b)
            row = (*row[:position], value, *row[position + 1 :])
        clipped.append(row)
    table.rows = clipped


def _filter(table: _Table, step: FilterRows, index: int) -> None:
    position = table.position(step.column)
    kind = table.types[position]
    value = step.value
    if value is None:
        keep_missing = step.op == "=="
        table.rows = [row for row in table.rows if (row[position] is None) == keep_missing]
        return
    if kind in _CLIPPABLE:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        expected = "a number"
    elif kind == "boolean":
        ok = isinstance(value, bool)
        expected = "true or false (with == or !=)"
    else:
        ok = isinstance(value, str)
        expected = "a string"
    if not ok:
        raise InvalidTransform(
            f"column {step.column!r} is a {kind} column; compare it with {expected}, not {value!r}",
            step=index,
        )
    compare = _COMPARE[step.op]
    table.rows = [
        row for row in table.rows if row[position] is not None and compare(row[position], value)
    ]


_COMPARE: dict[str, Any] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}

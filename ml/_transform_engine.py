"""Applying a transform spec to a stream of rows, with the semantics of :mod:`ml.transforms`.

Why streaming: a parent can be gigabytes, and the cleaning steps are row by row, except two.
So the steps become a chain of generators over the parent's rows (read again from its file for
each pass), and the output CSV is written as the rows come out:

* ``select_columns``, ``filter_rows``, ``drop_missing``: one pass, nothing held;
* ``drop_duplicates``: one pass, holding the SHA-256 of each distinct key seen (32 bytes a key);
* ``clip_outliers``: one more pass, through the steps before it, that collects the clipped
  columns' values (8 bytes each, what numpy needs to compute the same percentiles, mean and
  standard deviation as before), then it is a row-by-row clamp in the final pass.

The result is byte for byte what the in-memory engine gave (the tests keep that engine and
compare), including which error a spec raises: a step that leaves no rows is reported at that
step even when a later step names a column that does not exist, as when the steps ran one
after the other on the whole table.
"""

from __future__ import annotations

import array
import io
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.datasets import Value, csv_writer, render_value
from ml.errors import EmptyResult, InvalidTransform, NonNumericColumn, UnknownColumn
from ml.hashing import canonical_json, sha256_bytes

__all__ = ["Source", "run"]

Source = Callable[[], Iterable[tuple[Value, ...]]]
"""A parent's rows, from the start, each time it is called (one call per pass)."""

_CLIPPABLE = frozenset({"integer", "float"})
_FLUSH_ROWS = 4096
_COMPARE: dict[str, Any] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}

Op = Callable[[Iterator[tuple[Value, ...]]], Iterator[tuple[Value, ...]]]


@dataclass
class _Schema:
    names: list[str]
    types: list[str]

    def position(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise UnknownColumn(name, self.names) from None


class _Counter:
    """Counts the rows each step lets through, to report the first step that left none."""

    def __init__(self, steps: int) -> None:
        self.counts = [0] * steps

    def wrap(self, op: Op, step: int) -> Op:
        def counted(rows: Iterator[tuple[Value, ...]]) -> Iterator[tuple[Value, ...]]:
            for row in op(rows):
                self.counts[step] += 1
                yield row

        return counted

    def check(self, upto: int) -> None:
        for step, count in enumerate(self.counts[:upto]):
            if count == 0:
                raise EmptyResult(step=step + 1)


def _chain(source: Source, ops: list[Op], counter: _Counter) -> Iterator[tuple[Value, ...]]:
    rows: Iterator[tuple[Value, ...]] = iter(source())
    for step, op in enumerate(ops):
        rows = counter.wrap(op, step)(rows)
    return rows


def _drain(source: Source, ops: list[Op]) -> _Counter:
    counter = _Counter(len(ops))
    for _ in _chain(source, ops, counter):
        pass
    return counter


def run(
    source: Source,
    names: list[str],
    types: list[str],
    steps: tuple[Any, ...],
    write: Callable[[bytes], Any],
) -> int:
    """Apply ``steps`` to the rows of ``source`` (typed ``types``); write the output CSV through
    ``write`` in the one output dialect; return the number of rows written."""
    schema = _Schema(list(names), list(types))
    ops: list[Op] = []
    for index, step in enumerate(steps, start=1):
        try:
            ops.append(_build(step, index, schema, source, ops))
        except EmptyResult:
            raise
        except Exception:
            _drain(source, ops).check(len(ops))  # an earlier empty step is what it reports
            raise
    counter = _Counter(len(ops))
    buffer = io.StringIO(newline="")
    writer = csv_writer(buffer)
    writer.writerow(schema.names)
    written = 0
    for row in _chain(source, ops, counter):
        writer.writerow([render_value(value) for value in row])
        written += 1
        if written % _FLUSH_ROWS == 0:
            write(buffer.getvalue().encode("utf-8"))
            buffer.seek(0)
            buffer.truncate()
    counter.check(len(ops))
    write(buffer.getvalue().encode("utf-8"))
    return written


def _build(step: Any, index: int, schema: _Schema, source: Source, ops: list[Op]) -> Op:
    """The generator of one step, checked against the schema as it is at that step."""
    kind = step.name
    if kind in ("drop_duplicates", "drop_missing"):
        chosen = schema.names if step.columns is None else step.columns
        positions = [schema.position(name) for name in chosen]
        return _drop_missing(positions) if kind == "drop_missing" else _drop_duplicates(positions)
    if kind == "select_columns":
        positions = [schema.position(name) for name in step.columns]
        schema.names = [schema.names[p] for p in positions]
        schema.types = [schema.types[p] for p in positions]
        return _select(positions)
    if kind == "clip_outliers":
        return _clip(step, index, schema, source, ops)
    return _filter(step, index, schema)


def _drop_missing(positions: list[int]) -> Op:
    def op(rows: Iterator[tuple[Value, ...]]) -> Iterator[tuple[Value, ...]]:
        return (row for row in rows if all(row[p] is not None for p in positions))

    return op


def _drop_duplicates(positions: list[int]) -> Op:
    def op(rows: Iterator[tuple[Value, ...]]) -> Iterator[tuple[Value, ...]]:
        seen: set[bytes] = set()
        for row in rows:
            key = sha256_bytes(canonical_json([row[p] for p in positions]))
            if key not in seen:
                seen.add(key)
                yield row

    return op


def _select(positions: list[int]) -> Op:
    def op(rows: Iterator[tuple[Value, ...]]) -> Iterator[tuple[Value, ...]]:
        return (tuple(row[p] for p in positions) for row in rows)

    return op


def _clip(step: Any, index: int, schema: _Schema, source: Source, ops: list[Op]) -> Op:
    """Bounds from one pass over the steps so far; then clamp, row by row, column by column."""
    if step.columns is None:
        chosen = [n for n, t in zip(schema.names, schema.types, strict=True) if t in _CLIPPABLE]
    else:
        chosen = list(step.columns)
    columns: list[int] = []
    for name in chosen:  # the checks, in order, before any value is read
        position = schema.position(name)
        if schema.types[position] not in _CLIPPABLE:
            raise NonNumericColumn(name, kind=schema.types[position])
        columns.append(position)
    present = {p: array.array("d") for p in columns}
    counter = _Counter(len(ops))
    for row in _chain(source, ops, counter):
        for p in columns:
            if row[p] is not None:
                present[p].append(row[p])  # type: ignore[arg-type]
    counter.check(len(ops))
    clamps: list[tuple[int, Any, Any, bool]] = []
    for p in columns:
        if not present[p]:
            continue
        low, high = _bounds(np.frombuffer(present[p], dtype=np.float64), step)
        present[p] = array.array("d")
        # A bound past float64 (a large factor, or values near ±1.8e308) is no bound on that
        # side: every value is within it. A NaN bound, or one infinite the wrong way, means the
        # statistics themselves overflowed: there is nothing honest to clamp to.
        if not (low < math.inf and high > -math.inf):
            raise InvalidTransform(
                f"clip_outliers cannot bound column {schema.names[p]!r}: its "
                f"{'mean and standard deviation' if step.method == 'zscore' else 'quartiles'} "
                "overflow the float64 range",
                step=index,
            )
        bounds: tuple[Any, Any] = (low, high)
        if schema.types[p] == "integer":
            int_low = math.ceil(low) if math.isfinite(low) else low
            int_high = math.floor(high) if math.isfinite(high) else high
            if int_low <= int_high:
                bounds = (int_low, int_high)
            else:
                schema.types[p] = "float"
        clamps.append((p, bounds[0], bounds[1], schema.types[p] == "float"))

    def op(rows: Iterator[tuple[Value, ...]]) -> Iterator[tuple[Value, ...]]:
        for row in rows:
            for p, low_b, high_b, as_float in clamps:
                value = row[p]
                if value is not None:
                    if as_float:
                        value = float(value)
                    value = min(max(value, low_b), high_b)
                    row = (*row[:p], value, *row[p + 1 :])
            yield row

    return op


def _bounds(values: np.ndarray, step: Any) -> tuple[float, float]:
    """Lower and upper bound; either may be infinite (or NaN) when float64 overflows."""
    with np.errstate(over="ignore", invalid="ignore"):
        if step.method == "iqr":
            q1, q3 = (float(q) for q in np.percentile(values, [25.0, 75.0]))
            spread = q3 - q1
            return q1 - step.factor * spread, q3 + step.factor * spread
        mean, std = float(np.mean(values)), float(np.std(values))
        return mean - step.factor * std, mean + step.factor * std


def _filter(step: Any, index: int, schema: _Schema) -> Op:
    position = schema.position(step.column)
    kind = schema.types[position]
    value = step.value
    if value is None:
        keep_missing = step.op == "=="

        def missing(rows: Iterator[tuple[Value, ...]]) -> Iterator[tuple[Value, ...]]:
            return (row for row in rows if (row[position] is None) == keep_missing)

        return missing
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

    def kept(rows: Iterator[tuple[Value, ...]]) -> Iterator[tuple[Value, ...]]:
        return (row for row in rows if row[position] is not None and compare(row[position], value))

    return kept

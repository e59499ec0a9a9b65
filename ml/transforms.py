"""Declarative cleaning steps: the "clean" of collect → clean → store, recorded as lineage.

Why declarative: a derived dataset is registered with its parent's hash and the hash of the
transform spec, so an auditor can re-run the spec on the parent and get the same bytes. The
spec is therefore data (JSON), validated up front, and applying it is a pure function. The
spec's format, its validation and its semantics are one format, which is why they are
written down in this module (past 400 lines); the steps are executed, streaming, by
:mod:`ml._transform_engine`, over rows in memory (:func:`apply_transform`) or over a file
(:func:`derive_file`, whose memory does not grow with the file except for what
``drop_duplicates`` and ``clip_outliers`` must hold: see :func:`estimate_derive_bytes`).

Spec format (``TransformSpec.from_json``)::

    {"version": 1,                         # optional; the only version is 1
     "steps": [
       {"step": "drop_duplicates", "columns": ["a", "b"]},          # columns optional
       {"step": "drop_missing", "columns": ["a"]},                  # columns optional
       {"step": "clip_outliers", "method": "iqr", "factor": 1.5,    # or "zscore" (default 3.0)
        "columns": ["a"]},                                          # columns optional
       {"step": "select_columns", "columns": ["b", "a"]},
       {"step": "filter_rows", "column": "a", "op": ">=", "value": 3}
     ]}

Semantics, applied in order to the parent's parsed rows (:mod:`ml.datasets`):

* ``drop_duplicates``: keep the first of rows whose canonical encodings of ``columns``
  (default: all) are identical.
* ``drop_missing``: drop rows with a missing value in any of ``columns`` (default: all).
* ``clip_outliers``: for each of ``columns`` (default: every integer and float column), compute
  bounds from its non-missing values (``iqr``: ``q1 - f*(q3-q1)``, ``q3 + f*(q3-q1)`` with
  numpy's linear percentiles; ``zscore``: ``mean ± f*std``, population std) and clamp values
  into them. Integer columns get the bounds rounded inward (ceil/floor) and stay integer,
  unless no integer lies between the bounds, in which case the column becomes float.
* ``select_columns``: keep ``columns``, in the given order.
* ``filter_rows``: keep rows where ``<cell> <op> <value>`` holds; ``op`` is one of
  ``== != < <= > >=``. Numbers compare with integer/float columns, ``true``/``false`` with
  boolean columns (``==``/``!=`` only), strings with string columns (code-point order).
  A missing cell never matches, except ``value: null`` with ``==`` (keep missing) or ``!=``.

A step that leaves no rows is an error (:class:`~ml.errors.EmptyResult`).

Output: the CSV dialect of :func:`ml.datasets.render_csv` (UTF-8, ``\\n``, minimal quoting,
floats by ``repr``), so the same spec on the same parent always gives the same bytes. The
child's column types are re-inferred when the output is parsed.

Hash: ``spec.hash = sha256(canonical_json(spec.to_json()))`` where ``to_json`` is the
normalised spec: ``version`` present, every optional field explicit (``null`` for "all
columns"), column sets (not ``select_columns``) sorted, ``factor`` a float.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, ClassVar, Literal

from ml import _transform_engine as _engine
from ml.datasets import Dataset, Limits, Value, parse_dataset
from ml.errors import InvalidTransform, MemoryLimitExceeded
from ml.hashing import canonical_json, sha256_bytes
from ml.scanning import Engine, Schema, iter_rows, read_schema

__all__ = [
    "FILTER_OPS",
    "MAX_STEPS",
    "ClipOutliers",
    "Derivation",
    "DerivedFile",
    "DropDuplicates",
    "DropMissing",
    "FilterRows",
    "SelectColumns",
    "Step",
    "TransformSpec",
    "apply_transform",
    "derive",
    "derive_file",
    "estimate_derive_bytes",
]

SPEC_VERSION = 1
# The default cap on steps in one spec. The service passes its own setting (one limit for the
# HTTP schema and the parser); 50 is what it has always allowed.
MAX_STEPS = 50
FILTER_OPS: tuple[str, ...] = ("==", "!=", "<", "<=", ">", ">=")
_DEFAULT_FACTOR = {"iqr": 1.5, "zscore": 3.0}


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class DropDuplicates:
    """Keep the first of identical rows (compared on ``columns``, or all columns)."""

    name: ClassVar[str] = "drop_duplicates"
    columns: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """The normalised form that the spec hash covers."""
        return {"step": self.name, "columns": _sorted_or_none(self.columns)}


@dataclass(frozen=True)
class DropMissing:
    """Drop rows with a missing value in ``columns`` (or any column)."""

    name: ClassVar[str] = "drop_missing"
    columns: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """The normalised form that the spec hash covers."""
        return {"step": self.name, "columns": _sorted_or_none(self.columns)}


@dataclass(frozen=True)
class ClipOutliers:
    """Clamp numeric values into IQR or z-score bounds."""

    name: ClassVar[str] = "clip_outliers"
    method: Literal["iqr", "zscore"] = "iqr"
    factor: float = 1.5
    columns: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """The normalised form that the spec hash covers."""
        return {
            "step": self.name,
            "method": self.method,
            "factor": float(self.factor),
            "columns": _sorted_or_none(self.columns),
        }


@dataclass(frozen=True)
class SelectColumns:
    """Keep only ``columns``, in that order."""

    name: ClassVar[str] = "select_columns"
    columns: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The normalised form that the spec hash covers."""
        return {"step": self.name, "columns": list(self.columns)}


@dataclass(frozen=True)
class FilterRows:
    """Keep rows where ``column op value`` holds."""

    name: ClassVar[str] = "filter_rows"
    column: str
    op: str
    value: Value

    def to_json(self) -> dict[str, Any]:
        """The normalised form that the spec hash covers."""
        return {"step": self.name, "column": self.column, "op": self.op, "value": self.value}


Step = DropDuplicates | DropMissing | ClipOutliers | SelectColumns | FilterRows
_STEP_KEYS: dict[str, frozenset[str]] = {
    "drop_duplicates": frozenset({"columns"}),
    "drop_missing": frozenset({"columns"}),
    "clip_outliers": frozenset({"method", "factor", "columns"}),
    "select_columns": frozenset({"columns"}),
    "filter_rows": frozenset({"column", "op", "value"}),
}


def _sorted_or_none(columns: tuple[str, ...] | None) -> list[str] | None:
    return None if columns is None else sorted(columns)


# --------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class TransformSpec:
    """A validated, ordered list of cleaning steps, identified by its canonical hash."""

    steps: tuple[Step, ...]

    @classmethod
    def from_json(
        cls, document: str | bytes | Mapping[str, Any], *, max_steps: int = MAX_STEPS
    ) -> TransformSpec:
        """Parse and validate a spec given as JSON text or an already-decoded object.

        ``max_steps`` caps the number of steps (the caller's configured limit; a spec is
        applied step by step over every row, so its length bounds the work it asks for).
        Every problem raises :class:`~ml.errors.InvalidTransform` naming the step.
        """
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
        if isinstance(document, str | bytes):
            try:
                document = json.loads(document)
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidTransform(f"the spec is not valid JSON: {exc}") from None
        if not isinstance(document, Mapping):
            raise InvalidTransform('the spec must be a JSON object {"steps": [...]}')
        unknown = sorted(set(document) - {"steps", "version"})
        if unknown:
            raise InvalidTransform(f"unknown top-level key(s) {unknown}; allowed: steps, version")
        version = document.get("version", SPEC_VERSION)
        if isinstance(version, bool) or version != SPEC_VERSION:
            raise InvalidTransform(f"unsupported spec version {version!r}; the only one is 1")
        steps = document.get("steps")
        if not isinstance(steps, list) or not steps:
            raise InvalidTransform('"steps" must be a non-empty list of step objects')
        if len(steps) > max_steps:
            raise InvalidTransform(f"a spec has at most {max_steps} steps, got {len(steps)}")
        return cls(tuple(_parse_step(raw, index) for index, raw in enumerate(steps, start=1)))

    def to_json(self) -> dict[str, Any]:
        """The normalised spec document (see the module docstring)."""
        return {"version": SPEC_VERSION, "steps": [step.to_json() for step in self.steps]}

    @property
    def canonical_bytes(self) -> bytes:
        """Canonical JSON of :meth:`to_json`; what gets stored and hashed."""
        return canonical_json(self.to_json())

    @property
    def hash(self) -> bytes:
        """SHA-256 of :attr:`canonical_bytes`: the transform hash recorded on chain."""
        return sha256_bytes(self.canonical_bytes)


def _parse_step(raw: Any, index: int) -> Step:
    if not isinstance(raw, Mapping):
        raise InvalidTransform("a step must be a JSON object", step=index)
    kind = raw.get("step")
    if not isinstance(kind, str) or kind not in _STEP_KEYS:
        raise InvalidTransform(
            f'"step" must be one of {sorted(_STEP_KEYS)}, got {kind!r}', step=index
        )
    unknown = sorted(set(raw) - _STEP_KEYS[kind] - {"step"})
    if unknown:
        allowed = ", ".join(sorted(_STEP_KEYS[kind]))
        raise InvalidTransform(f"{kind} has no key(s) {unknown}; allowed: {allowed}", step=index)
    if kind in ("drop_duplicates", "drop_missing"):
        columns = _column_set(raw.get("columns"), index)
        return DropDuplicates(columns) if kind == "drop_duplicates" else DropMissing(columns)
    if kind == "select_columns":
        columns = _columns(raw.get("columns"), index, optional=False)
        assert columns is not None
        return SelectColumns(columns)
    if kind == "clip_outliers":
        method = raw.get("method", "iqr")
        if method not in _DEFAULT_FACTOR:
            raise InvalidTransform(f'method must be "iqr" or "zscore", got {method!r}', step=index)
        factor = raw.get("factor", _DEFAULT_FACTOR[method])
        if isinstance(factor, bool) or not _is_float64(factor) or factor <= 0:
            raise InvalidTransform(
                f"factor must be a positive number, got {_shown(factor)}", step=index
            )
        columns = _column_set(raw.get("columns"), index)
        return ClipOutliers(method=method, factor=float(factor), columns=columns)
    # filter_rows
    column = raw.get("column")
    if not isinstance(column, str) or not column:
        raise InvalidTransform("filter_rows needs a column name", step=index)
    op = raw.get("op")
    if op not in FILTER_OPS:
        raise InvalidTransform(f"op must be one of {list(FILTER_OPS)}, got {op!r}", step=index)
    if "value" not in raw:
        raise InvalidTransform("filter_rows needs a value", step=index)
    value = raw["value"]
    if value is not None and not isinstance(value, str | int | float):
        raise InvalidTransform(
            f"value must be a number, string, boolean or null, got {value!r}", step=index
        )
    if isinstance(value, int | float) and not _is_float64(value):
        raise InvalidTransform(
            f"value must be a finite number within the float64 range, got {_shown(value)}",
            step=index,
        )
    if (value is None or isinstance(value, bool)) and op not in ("==", "!="):
        raise InvalidTransform(f"{value!r} can only be compared with == or !=", step=index)
    return FilterRows(column=column, op=op, value=value)


def _is_float64(value: Any) -> bool:
    """Whether ``value`` is a number float64 holds: a finite float, or an integer within its
    range (compared exactly: ``math.isfinite`` or ``float`` of a longer one overflows)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and -sys.float_info.max <= value <= sys.float_info.max


def _shown(value: Any) -> str:
    """A value as a message shows it: an integer too long to read (or for ``str``, past 4,300
    digits) by its size."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"{'-' if value < 0 else ''}an integer of {value.bit_length()} bits"
    return repr(value)


def _column_set(raw: Any, index: int) -> tuple[str, ...] | None:
    """An optional set of columns, held sorted so equal specs compare and hash equal."""
    columns = _columns(raw, index, optional=True)
    return None if columns is None else tuple(sorted(columns))


def _columns(raw: Any, index: int, *, optional: bool) -> tuple[str, ...] | None:
    if raw is None and optional:
        return None
    if not isinstance(raw, list) or not raw:
        raise InvalidTransform('"columns" must be a non-empty list of column names', step=index)
    for name in raw:
        if not isinstance(name, str) or not name:
            raise InvalidTransform(f"column names must be non-empty strings: {name!r}", step=index)
    if len(set(raw)) != len(raw):
        raise InvalidTransform(f'"columns" lists a column twice: {raw}', step=index)
    return tuple(raw)


# --------------------------------------------------------------------------- apply


def apply_transform(dataset: Dataset, spec: TransformSpec) -> bytes:
    """Run ``spec`` on ``dataset`` and return the derived CSV file's bytes.

    Deterministic: the output depends only on the parent's parsed rows and the spec. The same
    engine as :func:`derive_file` (:mod:`ml._transform_engine`), over rows held in memory.
    """
    out = io.BytesIO()
    _engine.run(
        lambda: dataset.rows,
        list(dataset.column_names),
        [column.type for column in dataset.columns],
        spec.steps,
        out.write,
    )
    return out.getvalue()


# --------------------------------------------------------------------------- derive


@dataclass(frozen=True)
class Derivation:
    """A derived dataset with everything its registration needs.

    ``data`` is the new file, ``dataset`` its parsed form (hashes, rows), ``parent_hashes``
    the content hashes of the parents and ``transform_hash`` the spec's hash.
    """

    data: bytes
    dataset: Dataset
    parent_hashes: tuple[bytes, ...]
    transform_hash: bytes
    spec: TransformSpec


def derive(parent: Dataset, spec: TransformSpec, *, limits: Limits = Limits()) -> Derivation:
    """Apply ``spec`` to ``parent`` (in memory) and parse the result as a dataset of its own."""
    data = apply_transform(parent, spec)
    return Derivation(
        data=data,
        dataset=parse_dataset(data, limits=limits),
        parent_hashes=(parent.content_hash,),
        transform_hash=spec.hash,
        spec=spec,
    )


@dataclass(frozen=True)
class DerivedFile:
    """What :func:`derive_file` wrote: the parent's schema, the rows written, the spec's hash."""

    parent: Schema
    rows: int
    transform_hash: bytes


# Bytes held per parent row by the steps that hold something (upper bounds, 64-bit CPython):
# a distinct key's digest in a set (a 32-byte bytes object and its set slot), and one float per
# clipped value.
_DEDUPE_BYTES = 112
_CLIP_BYTES = 8


def estimate_derive_bytes(spec: TransformSpec, parent: Schema) -> int:
    """An upper estimate of the memory :func:`derive_file` holds for ``spec`` on ``parent``.

    ``drop_duplicates`` holds a digest per distinct key (at most one per parent row), for
    every such step at once in the final pass; ``clip_outliers`` holds the clipped columns'
    values during its own pass. Everything else streams.
    """
    rows = parent.row_count
    numeric = sum(1 for column in parent.columns if column.type in ("integer", "float"))
    dedupe = sum(_DEDUPE_BYTES * rows for step in spec.steps if isinstance(step, DropDuplicates))
    clips = [
        _CLIP_BYTES * rows * (numeric if step.columns is None else len(step.columns))
        for step in spec.steps
        if isinstance(step, ClipOutliers)
    ]
    return dedupe + max(clips, default=0)


def derive_file(
    parent: str | os.PathLike[str],
    spec: TransformSpec,
    out: BinaryIO,
    *,
    limits: Limits = Limits(),
    max_memory_bytes: int | None = None,
    engine: Engine | None = None,
) -> DerivedFile:
    """Apply ``spec`` to the CSV file ``parent``, streaming; write the derived CSV to ``out``.

    The parent is validated and typed first (:func:`ml.scanning.read_schema`), then read once
    per pass (a ``clip_outliers`` step adds one). The output bytes are those of
    :func:`apply_transform` on the loaded parent. With ``max_memory_bytes``, a spec whose
    :func:`estimate_derive_bytes` is larger is refused before anything is read
    (:class:`~ml.errors.MemoryLimitExceeded`, limit ``max_memory_bytes``).
    """
    schema = read_schema(parent, limits, engine=engine)
    if max_memory_bytes is not None:
        estimate = estimate_derive_bytes(spec, schema)
        if estimate > max_memory_bytes:
            raise MemoryLimitExceeded(
                operation="this derivation (drop_duplicates, clip_outliers)",
                limit="max_memory_bytes",
                maximum=max_memory_bytes,
                estimate=estimate,
            )
    written = _engine.run(
        lambda: iter_rows(parent, schema.columns, engine=engine),
        list(schema.column_names),
        [column.type for column in schema.columns],
        spec.steps,
        out.write,
    )
    return DerivedFile(parent=schema, rows=written, transform_hash=spec.hash)

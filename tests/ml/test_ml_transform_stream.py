"""Streaming transforms (ml._transform_engine) against the old in-memory engine.

The same spec on the same parent must give the same output bytes, or the same error at the same
step, whether it runs over rows in memory (apply_transform) or streams over the parent's file
(derive_file), as the old engine (kept in tests/ml/_transforms_v1.py) did.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml import errors
from ml.datasets import parse_dataset, render_csv
from ml.scanning import read_schema
from ml.transforms import TransformSpec, apply_transform, derive_file, estimate_derive_bytes
from tests.ml._transforms_v1 import apply_transform_v1

COLUMNS = ("a", "b", "c", "s")
numbers = st.one_of(st.none(), st.integers(-60, 60), st.sampled_from([0.5, -2.25, 7.0, 1e6]))
strings = st.one_of(st.none(), st.sampled_from(["x", "y", "x,y", "Z", "0"]))
rows = st.lists(st.tuples(numbers, numbers, st.one_of(st.none(), st.booleans()), strings),
                min_size=1, max_size=30)  # fmt: skip
column_sets = st.one_of(
    st.none(), st.lists(st.sampled_from([*COLUMNS, "ghost"]), min_size=1, max_size=3, unique=True)
)
step = st.one_of(
    st.builds(lambda c: {"step": "drop_duplicates", "columns": c}, column_sets),
    st.builds(lambda c: {"step": "drop_missing", "columns": c}, column_sets),
    st.builds(
        lambda m, f, c: {"step": "clip_outliers", "method": m, "factor": f, "columns": c},
        st.sampled_from(["iqr", "zscore"]),
        st.sampled_from([0.1, 0.5, 1.5, 3.0]),
        column_sets,
    ),
    st.builds(
        lambda c: {"step": "select_columns", "columns": c},
        st.lists(st.sampled_from([*COLUMNS, "ghost"]), min_size=1, max_size=4, unique=True),
    ),
    st.builds(
        lambda c, o, v: {"step": "filter_rows", "column": c, "op": o, "value": v},
        st.sampled_from([*COLUMNS, "ghost"]),
        st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
        st.one_of(st.none(), st.integers(-20, 20), st.sampled_from([0.5, "x", "y", True])),
    ),
)
specs = st.lists(step, min_size=1, max_size=4)
STREAMS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                   HealthCheck.function_scoped_fixture])  # fmt: skip


def _outcome(run: Any) -> tuple[Any, ...]:
    try:
        return ("ok", run())
    except errors.MlError as exc:
        attrs = {k: v for k, v in vars(exc).items() if k != "message"}
        return ("error", type(exc).__name__, str(exc), attrs)


@STREAMS
@given(table=rows, steps=specs)
def test_streaming_gives_the_old_bytes_and_errors(tmp_path: Path, table: Any, steps: Any) -> None:
    try:
        spec = TransformSpec.from_json({"steps": steps})
    except errors.InvalidTransform:
        return  # a spec the parser refuses never runs, in any engine
    data = render_csv(COLUMNS, table)
    parent = parse_dataset(data)
    path = tmp_path / "parent.csv"
    path.write_bytes(data)
    expected = _outcome(lambda: apply_transform_v1(parent, spec))
    assert _outcome(lambda: apply_transform(parent, spec)) == expected

    def streamed() -> bytes:
        out = io.BytesIO()
        derived = derive_file(path, spec, out)
        assert derived.rows == out.getvalue().count(b"\n") - 1  # no field spans lines here
        return out.getvalue()

    assert _outcome(streamed) == expected


def test_an_empty_step_is_reported_before_a_later_steps_error(tmp_path: Path) -> None:
    data = b"a,b\n1,2\n3,4\n"
    path = tmp_path / "p.csv"
    path.write_bytes(data)
    spec = TransformSpec.from_json(
        {"steps": [{"step": "filter_rows", "column": "a", "op": ">", "value": 9},
                   {"step": "select_columns", "columns": ["ghost"]}]}
    )  # fmt: skip
    with pytest.raises(errors.EmptyResult) as info:
        derive_file(path, spec, io.BytesIO())
    assert info.value.step == 1


def test_clipping_streams_in_two_passes_with_the_same_bounds(tmp_path: Path) -> None:
    values = [*range(100), 10_000, -5_000]
    data = render_csv(("v", "w"), [(v, v * 0.5) for v in values])
    path = tmp_path / "p.csv"
    path.write_bytes(data)
    spec = TransformSpec.from_json({"steps": [{"step": "clip_outliers", "method": "iqr"}]})
    out = io.BytesIO()
    derive_file(path, spec, out)
    assert out.getvalue() == apply_transform_v1(parse_dataset(data), spec)
    assert b"10000" not in out.getvalue()


def test_a_derivation_that_would_hold_too_much_is_refused_first(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(render_csv(("a", "b"), [(i, i % 3) for i in range(1000)]))
    dedupe = TransformSpec.from_json({"steps": [{"step": "drop_duplicates"}]})
    clip = TransformSpec.from_json({"steps": [{"step": "clip_outliers"}]})
    stream = TransformSpec.from_json({"steps": [{"step": "drop_missing"}]})
    schema = read_schema(path)
    assert estimate_derive_bytes(dedupe, schema) == 112 * 1000
    assert estimate_derive_bytes(clip, schema) == 8 * 1000 * 2
    assert estimate_derive_bytes(stream, schema) == 0
    with pytest.raises(errors.MemoryLimitExceeded) as info:
        derive_file(path, dedupe, io.BytesIO(), max_memory_bytes=100_000)
    assert (info.value.limit, info.value.maximum, info.value.estimate) == (
        "max_memory_bytes", 100_000, 112_000,
    )  # fmt: skip
    assert isinstance(info.value, errors.TooLarge)  # a 413 that names the setting
    assert "112,000" in str(info.value) and "max_memory_bytes" in str(info.value)
    out = io.BytesIO()
    derive_file(path, stream, out, max_memory_bytes=1)  # nothing held: any limit will do
    assert out.getvalue().startswith(b"a,b\n0,0\n")

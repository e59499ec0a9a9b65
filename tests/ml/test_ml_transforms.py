"""Cleaning specs: validation, normalised hash, step semantics and byte determinism."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from ml import errors
from ml.datasets import parse_dataset
from ml.hashing import canonical_json
from ml.transforms import (
    MAX_STEPS,
    ClipOutliers,
    DropDuplicates,
    FilterRows,
    TransformSpec,
    apply_transform,
    derive,
)

RAW = (
    b"id,x,score,city,ok\n"
    b"1,10,0.5,Paris,true\n"
    b"1,10,0.5,Paris,true\n"
    b"2,,1.5,Lyon,false\n"
    b"3,12,,Nice,\n"
    b"4,11,2.5,Paris,true\n"
    b'5,1000,-50.0,"Saint-Denis, Reunion",false\n'
)


def spec(*steps: dict) -> TransformSpec:
    return TransformSpec.from_json({"steps": list(steps)})


def run(*steps: dict, data: bytes = RAW) -> str:
    return apply_transform(parse_dataset(data), spec(*steps)).decode()


# --------------------------------------------------------------------------- spec


def test_spec_normalises_and_hashes_canonically() -> None:
    s = TransformSpec.from_json(
        '{"steps": [{"step": "drop_missing", "columns": ["x", "id"]},'
        ' {"step": "clip_outliers", "method": "zscore", "factor": 2}]}'
    )
    assert s.to_json() == {
        "version": 1,
        "steps": [
            {"step": "drop_missing", "columns": ["id", "x"]},
            {"step": "clip_outliers", "method": "zscore", "factor": 2.0, "columns": None},
        ],
    }
    assert s.canonical_bytes == canonical_json(s.to_json())
    assert s.hash == hashlib.sha256(s.canonical_bytes).digest()
    # Same meaning, different spelling: same hash. Different meaning: different hash.
    same = spec(
        {"step": "drop_missing", "columns": ["id", "x"]},
        {"step": "clip_outliers", "method": "zscore", "factor": 2.0, "columns": None},
    )
    assert same.hash == s.hash
    assert spec({"step": "drop_missing", "columns": ["id"]}).hash != s.hash
    assert TransformSpec.from_json(json.dumps(s.to_json())) == s


def test_select_columns_order_is_part_of_the_hash() -> None:
    a = spec({"step": "select_columns", "columns": ["x", "id"]})
    b = spec({"step": "select_columns", "columns": ["id", "x"]})
    assert a.hash != b.hash


def test_defaults_are_explicit() -> None:
    s = spec({"step": "clip_outliers"}, {"step": "drop_duplicates"})
    assert s.steps == (ClipOutliers("iqr", 1.5, None), DropDuplicates(None))
    assert spec({"step": "clip_outliers", "method": "zscore"}).steps[0].factor == 3.0


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ("not json", "not valid JSON"),
        ("[]", "JSON object"),
        ({"steps": []}, "non-empty list"),
        ({"steps": "drop"}, "non-empty list"),
        ({"steps": [{"step": "x"}]}, "step 1"),
        ({"steps": [{"step": "drop_missing"}, "drop"]}, "step 2"),
        ({"steps": [{"step": "drop_missing", "column": "a"}]}, "no key(s) ['column']"),
        ({"steps": [{"step": "drop_missing", "columns": []}]}, "non-empty list"),
        ({"steps": [{"step": "drop_missing", "columns": ["a", "a"]}]}, "twice"),
        ({"steps": [{"step": "drop_missing", "columns": [1]}]}, "non-empty strings"),
        ({"steps": [{"step": "select_columns"}]}, "non-empty list"),
        ({"steps": [{"step": "clip_outliers", "method": "mad"}]}, "method"),
        ({"steps": [{"step": "clip_outliers", "factor": 0}]}, "positive"),
        ({"steps": [{"step": "clip_outliers", "factor": True}]}, "positive"),
        ({"steps": [{"step": "clip_outliers", "factor": "2"}]}, "positive"),
        ({"steps": [{"step": "filter_rows", "column": "a", "op": "~", "value": 1}]}, "op"),
        ({"steps": [{"step": "filter_rows", "op": "==", "value": 1}]}, "column"),
        ({"steps": [{"step": "filter_rows", "column": "a", "op": "=="}]}, "needs a value"),
        ({"steps": [{"step": "filter_rows", "column": "a", "op": "<", "value": None}]}, "=="),
        ({"steps": [{"step": "filter_rows", "column": "a", "op": "<", "value": True}]}, "=="),
        ({"steps": [{"step": "filter_rows", "column": "a", "op": "==", "value": [1]}]}, "value"),
        ({"steps": [{"step": "drop_missing"}], "extra": 1}, "top-level"),
        ({"steps": [{"step": "drop_missing"}], "version": 2}, "version"),
        ({"steps": [{"step": "drop_missing"}] * 51}, "at most 50 steps, got 51"),
    ],
)
def test_invalid_specs_are_rejected_clearly(document: object, fragment: str) -> None:
    with pytest.raises(errors.InvalidTransform) as info:
        TransformSpec.from_json(document)  # type: ignore[arg-type]
    assert fragment in str(info.value)
    assert isinstance(info.value, errors.TransformError) and isinstance(info.value, ValueError)


def test_the_step_cap_is_the_callers_limit() -> None:
    document = {"steps": [{"step": "drop_missing"}] * 60}
    assert MAX_STEPS == 50  # what the service has always allowed
    assert len(TransformSpec.from_json({"steps": document["steps"][:50]}).steps) == 50
    assert len(TransformSpec.from_json(document, max_steps=60).steps) == 60
    with pytest.raises(errors.InvalidTransform, match="at most 3 steps, got 4"):
        TransformSpec.from_json({"steps": document["steps"][:4]}, max_steps=3)
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match="max_steps"):
            TransformSpec.from_json(document, max_steps=bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- steps


def test_drop_duplicates_keeps_first() -> None:
    out = run({"step": "drop_duplicates"})
    assert out.count("1,10,0.5,Paris,true") == 1
    assert out.splitlines()[1] == "1,10,0.5,Paris,true"
    # On a subset of columns: the first Paris row wins, the other Paris rows go.
    assert [
        line.split(",")[0]
        for line in run({"step": "drop_duplicates", "columns": ["city"]}).splitlines()[1:]
    ] == ["1", "2", "3", "5"]


def test_drop_missing_all_or_some_columns() -> None:
    assert run({"step": "drop_missing"}).splitlines()[1:] == [
        "1,10,0.5,Paris,true",
        "1,10,0.5,Paris,true",
        "4,11,2.5,Paris,true",
        '5,1000,-50.0,"Saint-Denis, Reunion",false',
    ]
    assert len(run({"step": "drop_missing", "columns": ["x"]}).splitlines()) == 6


def test_clip_outliers_iqr_matches_numpy() -> None:
    data = b"v,w\n" + b"".join(f"{v},{v * 0.5}\n".encode() for v in [1, 2, 3, 4, 100])
    out = parse_dataset(
        apply_transform(parse_dataset(data), spec({"step": "clip_outliers", "factor": 1.5}))
    )
    q1, q3 = np.percentile([1, 2, 3, 4, 100], [25, 75])
    high = q3 + 1.5 * (q3 - q1)  # 7.0: integer column stays integer
    assert out.column("v").type == "integer"
    assert out.values("v") == (1, 2, 3, 4, int(np.floor(high)))
    wq1, wq3 = np.percentile([0.5, 1.0, 1.5, 2.0, 50.0], [25, 75])
    assert out.values("w") == (0.5, 1.0, 1.5, 2.0, wq3 + 1.5 * (wq3 - wq1))


def test_clip_outliers_zscore_and_missing_values() -> None:
    values = [10.0, 11.0, 9.0, 10.5, 9.5, 10.0, 10.0, 50.0]
    data = b"v\n" + b"".join(f"{v!r}\n".encode() for v in values) + b'""\n'
    out = parse_dataset(
        apply_transform(
            parse_dataset(data), spec({"step": "clip_outliers", "method": "zscore", "factor": 2})
        )
    )
    arr = np.asarray(values)
    high = arr.mean() + 2 * arr.std()
    assert out.values("v") == (*values[:-1], high, None)


def test_clip_integer_column_with_no_integer_between_bounds_becomes_float() -> None:
    out = parse_dataset(
        apply_transform(parse_dataset(b"v\n1\n2\n"), spec({"step": "clip_outliers", "factor": 0.1}))
    )
    assert out.column("v").type == "float"
    assert out.values("v") == (1.2, 1.8)  # q1=1.25, q3=1.75 -> bounds 1.2, 1.8


def test_clip_rejects_non_numeric_column() -> None:
    with pytest.raises(errors.NonNumericColumn):
        run({"step": "clip_outliers", "columns": ["city"]})
    with pytest.raises(errors.NonNumericColumn):
        run({"step": "clip_outliers", "columns": ["ok"]})


def test_select_columns_reorders() -> None:
    assert run({"step": "select_columns", "columns": ["city", "id"]}).splitlines()[:2] == [
        "city,id",
        "Paris,1",
    ]


@pytest.mark.parametrize(
    ("column", "op", "value", "ids"),
    [
        ("x", ">=", 11, ["3", "4", "5"]),
        ("x", "<", 11.5, ["1", "1", "4"]),
        ("x", "!=", 10, ["3", "4", "5"]),  # a missing cell never matches
        ("x", "==", None, ["2"]),
        ("x", "!=", None, ["1", "1", "3", "4", "5"]),
        ("city", "==", "Paris", ["1", "1", "4"]),
        ("city", "<", "N", ["2"]),  # code-point order
        ("ok", "==", False, ["2", "5"]),
        ("score", "<=", 0.5, ["1", "1", "5"]),
    ],
)
def test_filter_rows(column: str, op: str, value: object, ids: list[str]) -> None:
    out = run({"step": "filter_rows", "column": column, "op": op, "value": value})
    assert [line.split(",")[0] for line in out.splitlines()[1:]] == ids


@pytest.mark.parametrize(("column", "value"), [("x", "10"), ("city", 3), ("ok", 1), ("x", True)])
def test_filter_rows_type_mismatch(column: str, value: object) -> None:
    with pytest.raises(errors.InvalidTransform, match="step 2"):
        run(
            {"step": "drop_missing", "columns": ["id"]},
            {"step": "filter_rows", "column": column, "op": "==", "value": value},
        )


def test_unknown_column_in_any_step() -> None:
    for step in (
        {"step": "drop_missing", "columns": ["ghost"]},
        {"step": "drop_duplicates", "columns": ["ghost"]},
        {"step": "clip_outliers", "columns": ["ghost"]},
        {"step": "select_columns", "columns": ["ghost"]},
        {"step": "filter_rows", "column": "ghost", "op": "==", "value": 1},
    ):
        with pytest.raises(errors.UnknownColumn):
            run(step)
    # A column removed by an earlier step is gone for later steps.
    with pytest.raises(errors.UnknownColumn):
        run(
            {"step": "select_columns", "columns": ["id"]},
            {"step": "drop_missing", "columns": ["x"]},
        )


def test_step_removing_every_row_is_an_error() -> None:
    with pytest.raises(errors.EmptyResult) as info:
        run(
            {"step": "drop_missing"},
            {"step": "filter_rows", "column": "x", "op": ">", "value": 5000},
        )
    assert info.value.step == 2


# --------------------------------------------------------------------------- output


def test_output_dialect_and_determinism() -> None:
    parent = parse_dataset(RAW)
    s = spec({"step": "drop_duplicates"}, {"step": "clip_outliers", "columns": ["score"]})
    first = apply_transform(parent, s)
    assert first == apply_transform(parse_dataset(RAW), TransformSpec.from_json(s.to_json()))
    assert b"\r" not in first and first.endswith(b"\n")
    assert b'"Saint-Denis, Reunion"' in first  # minimal quoting
    assert first.splitlines()[3] == b"3,12,,Nice,"  # missing values are empty fields


def test_round_trip_preserves_values_and_types() -> None:
    parent = parse_dataset(RAW)
    child = parse_dataset(
        apply_transform(parent, spec({"step": "drop_missing", "columns": ["id"]}))
    )
    assert child.columns == parent.columns
    assert child.rows == parent.rows
    assert child.row_digests() == parent.row_digests()


def test_single_missing_column_round_trips() -> None:
    parent = parse_dataset(b"a,b\n1,x\n,y\n")
    child = parse_dataset(
        apply_transform(parent, spec({"step": "select_columns", "columns": ["a"]}))
    )
    assert child.rows == ((1,), (None,))


def test_derive_records_lineage() -> None:
    parent = parse_dataset(RAW)
    s = spec({"step": "drop_duplicates"}, {"step": "drop_missing"})
    derived = derive(parent, s)
    assert derived.parent_hashes == (parent.content_hash,)
    assert derived.transform_hash == s.hash
    assert derived.dataset.content_hash == hashlib.sha256(derived.data).digest()
    assert derived.dataset.row_count == 3
    assert derived.spec == s
    assert isinstance(s.steps[0], DropDuplicates) and not isinstance(s.steps[0], FilterRows)


@pytest.mark.parametrize("kind", [[], {}, 3, None])
def test_a_step_name_that_is_not_a_string_is_an_invalid_transform(kind):
    """Found by the API fuzzer: an unhashable ``step`` raised TypeError (a 500)."""
    from ml.errors import InvalidTransform
    from ml.transforms import TransformSpec

    with pytest.raises(InvalidTransform, match='"step" must be one of'):
        TransformSpec.from_json({"steps": [{"step": kind}]})

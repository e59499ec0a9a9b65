"""Dataset loading: types, hashes, the canonical row encoding, and one test per failure."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ml import errors
from ml.datasets import (
    Column,
    Limits,
    canonical_row_bytes,
    load_dataset,
    parse_dataset,
    validate_columns,
)
from ml.hashing import sha256_file

SALES = b"x1,x2,y\n100,200,5000\n200,300,6000\n300,400,7000\n"


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# --------------------------------------------------------------------------- happy paths


def test_load_sales_example(csv_file: Callable[[bytes], Path]) -> None:
    path = csv_file(SALES)
    dataset = load_dataset(path)
    assert dataset.path == path
    assert dataset.column_names == ("x1", "x2", "y")
    assert [c.type for c in dataset.columns] == ["integer"] * 3
    assert dataset.row_count == 3
    assert dataset.rows == ((100, 200, 5000), (200, 300, 6000), (300, 400, 7000))
    assert dataset.content_hash == sha(SALES) == sha256_file(path)
    assert dataset.size == len(SALES)
    assert dataset.schema_hash == sha(
        b'[{"name":"x1","type":"integer"},{"name":"x2","type":"integer"},'
        b'{"name":"y","type":"integer"}]'
    )


def test_row_digests_follow_the_documented_encoding() -> None:
    dataset = parse_dataset(SALES)
    assert dataset.canonical_row_bytes(0) == b"[100,200,5000]"
    assert dataset.row_digests() == [
        sha(b"[100,200,5000]"),
        sha(b"[200,300,6000]"),
        sha(b"[300,400,7000]"),
    ]
    assert all(len(d) == 32 for d in dataset.row_digests())


def test_types_and_parsed_values() -> None:
    data = b'i,f,b,s,empty\n1,2.5,true,hello,\n-3,1e3,FALSE,"a,b",\n,7,True,,\n0,-0.0,,007,\n'
    dataset = parse_dataset(data)
    assert [c.type for c in dataset.columns] == ["integer", "float", "boolean", "string", "string"]
    assert dataset.rows == (
        (1, 2.5, True, "hello", None),
        (-3, 1000.0, False, "a,b", None),
        (None, 7.0, True, None, None),
        (0, -0.0, None, "007", None),
    )
    # Integers in a float column are floats; -0.0 keeps its sign; booleans are JSON booleans.
    assert canonical_row_bytes(dataset.rows[2]) == b"[null,7.0,true,null,null]"
    assert dataset.canonical_row_bytes(3) == b'[0,-0.0,null,"007",null]'
    assert dataset.canonical_row_bytes(1) == b'[-3,1000.0,false,"a,b",null]'


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (["1", "2"], "integer"),
        (["1", "2.0"], "float"),
        (["1", "1e5"], "float"),
        (["1", "NaN"], "string"),  # only an empty field is missing
        (["1", "inf"], "string"),
        (["1e400", "1"], "string"),  # not finite as a double
        (["+1", "2"], "string"),  # JSON number grammar: no leading +
        (["01", "2"], "string"),  # ... and no leading zeros
        ([" 1", "2"], "string"),
        (["1.", "2"], "string"),
        (["true", "1"], "string"),
        (["true", "False"], "boolean"),
        (["", ""], "string"),
    ],
)
def test_type_inference_rules(tokens: list[str], expected: str) -> None:
    data = ("h,other\n" + "".join(f"{t},x\n" for t in tokens)).encode()
    assert parse_dataset(data).columns[0] == Column("h", expected)  # type: ignore[arg-type]


def test_float_values_round_trip_exactly() -> None:
    values = [0.1, 1 / 3, 1e-300, 123456.789, -2.5e-08]
    data = ("v\n" + "".join(f"{v!r}\n" for v in values)).encode()
    assert parse_dataset(data).values("v") == tuple(values)


def test_bom_crlf_and_multiline_quoted_fields() -> None:
    data = b'\xef\xbb\xbfa,b\r\n1,"two\r\nlines"\r\n3,x\r\n'
    dataset = parse_dataset(data)
    assert dataset.column_names == ("a", "b")  # the BOM is not part of the name
    assert dataset.rows == ((1, "two\r\nlines"), (3, "x"))
    assert dataset.lines == (2, 4)
    assert dataset.content_hash == sha(data)  # the hash still covers the exact bytes


def test_no_trailing_newline_is_fine() -> None:
    assert parse_dataset(b"a\n1\n2").rows == ((1,), (2,))


def test_numeric_array_and_summary() -> None:
    dataset = parse_dataset(b"a,b,c,s\n1,2.5,true,x\n,0.5,false,y\n")
    matrix = dataset.numeric_array(["a", "b", "c"])
    assert matrix.dtype == np.float64
    np.testing.assert_array_equal(matrix, [[1.0, 2.5, 1.0], [np.nan, 0.5, 0.0]])
    with pytest.raises(errors.NonNumericColumn):
        dataset.numeric_array(["s"])
    summary = dataset.summary()
    assert summary["content_hash"] == "0x" + dataset.content_hash.hex()
    assert summary["schema_hash"] == "0x" + dataset.schema_hash.hex()
    assert summary["row_count"] == 2
    assert summary["columns"][3] == {"name": "s", "type": "string"}
    assert "sha256:" + dataset.content_hash.hex() in repr(dataset)


def test_real_dataset_hashes(real_data: dict) -> None:
    iris = real_data["iris"]
    dataset = load_dataset(iris.path)
    assert dataset.row_count == 150
    assert dataset.content_hash == sha256_file(iris.path)
    assert dataset.column("target").type == "string"
    assert dataset.canonical_row_bytes(0) == b'[5.1,3.5,1.4,0.2,"setosa"]'
    np.testing.assert_array_equal(dataset.numeric_array(iris.features), iris.X)


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("data", "error", "attrs"),
    [
        (b"", errors.EmptyFile, {}),
        (b"\xef\xbb\xbf", errors.NoHeader, {}),
        (b"\n1,2\n", errors.NoHeader, {}),
        (b"1,2.5\n3,4\n", errors.NoHeader, {}),
        (b"a,,c\n1,2,3\n", errors.InvalidColumnName, {"position": 2}),
        (b"a,b,a,b,c\n1,2,3,4,5\n", errors.DuplicateColumns, {"names": ("a", "b")}),
        (b"a,b\n1,2\n3\n", errors.RaggedRow, {"line": 3, "expected": 2, "actual": 1}),
        (b"a,b\n1,2\n3,4,5\n", errors.RaggedRow, {"line": 3, "actual": 3}),
        (b'a,b\n1,"x\ny"\n\n', errors.RaggedRow, {"line": 4, "actual": 0}),
        (b"a\n1\n\xff\n", errors.UndecodableText, {"line": 3, "offset": 4}),
        (b"\xff\xfea\x00\n\x00", errors.UndecodableText, {"line": 1, "offset": 0}),
        (b'a,b\n1,"open\n', errors.MalformedCsv, {}),
        (b'a\n"x"y\n', errors.MalformedCsv, {"line": 2}),
        (b"a,b\n1,\x002\n", errors.MalformedCsv, {"line": 2}),
        (b"a,b\n", errors.NoRows, {}),
        (b"a,b", errors.NoRows, {}),
    ],
)
def test_each_validation_failure_has_its_error(data: bytes, error: type, attrs: dict) -> None:
    with pytest.raises(error) as info:
        parse_dataset(data)
    assert isinstance(info.value, errors.DatasetError)
    assert isinstance(info.value, ValueError)
    assert info.value.message and str(info.value) == info.value.message
    for name, value in attrs.items():
        assert getattr(info.value, name) == value


def test_empty_file_from_disk(csv_file: Callable[[bytes], Path]) -> None:
    path = csv_file(b"")
    assert sha256_file(path) == sha(b"")  # hashing a 0-byte file works...
    with pytest.raises(errors.EmptyFile):  # ...but it is not a dataset
        load_dataset(path)


@pytest.mark.parametrize(
    ("limits", "limit", "actual"),
    [
        (Limits(max_bytes=10), "max_bytes", 20),
        (Limits(max_rows=1), "max_rows", None),
        (Limits(max_columns=2), "max_columns", 3),
        (Limits(max_cells=5), "max_cells", None),
        (Limits(max_field_chars=2), "max_field_chars", 3),
    ],
)
def test_limits(
    csv_file: Callable[[bytes], Path], limits: Limits, limit: str, actual: int | None
) -> None:
    data = b"a,b,c\n1,2,3\n4,5,666\n"
    assert len(data) == 20
    parse_dataset(data)  # fine with the defaults
    for load in (
        lambda: parse_dataset(data, limits=limits),
        lambda: load_dataset(csv_file(data), limits),
    ):
        with pytest.raises(errors.TooLarge) as info:
            load()
        assert info.value.limit == limit
        assert info.value.maximum == getattr(limits, limit)
        assert info.value.actual == actual
        assert limit in str(info.value)


def test_limits_accept_exact_bounds() -> None:
    data = b"a,b,c\n1,2,3\n4,5,666\n"
    limits = Limits(max_bytes=20, max_rows=2, max_columns=3, max_cells=6, max_field_chars=3)
    assert parse_dataset(data, limits=limits).row_count == 2


@pytest.mark.parametrize(
    "kwargs",
    [{"max_rows": 0}, {"max_bytes": -1}, {"max_columns": True}, {"max_field_chars": 10**9}],
)
def test_limits_validate_themselves(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Limits(**kwargs)


def test_column_type_is_checked() -> None:
    with pytest.raises(ValueError):
        Column("a", "decimal")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- columns


COLUMNS = b"x1,x2,name,flag,y,gap\n1,2.5,a,true,10,\n2,3.5,b,false,20,1\n"


def test_validate_columns_defaults_to_every_other_numeric_column() -> None:
    dataset = parse_dataset(b"x1,x2,flag,y\n1,2.5,true,10\n2,3.5,false,20\n")
    assert validate_columns(dataset, "y") == ("x1", "x2", "flag")
    assert validate_columns(dataset, "y", ["x2"]) == ("x2",)


def test_validate_columns_unknown_target_and_feature() -> None:
    dataset = parse_dataset(COLUMNS)
    with pytest.raises(errors.UnknownColumn) as info:
        validate_columns(dataset, "nope", ["x1"])
    assert info.value.column == "nope" and "x1" in info.value.available
    with pytest.raises(errors.UnknownColumn) as info:
        validate_columns(dataset, "y", ["x1", "ghost"])
    assert info.value.column == "ghost"


def test_validate_columns_non_numeric_feature_names_the_line() -> None:
    dataset = parse_dataset(b"a,b\n1,2\nNaN,3\n")
    with pytest.raises(errors.NonNumericColumn) as info:
        validate_columns(dataset, "b", ["a"])
    assert info.value.column == "a"
    assert info.value.line == 3 and info.value.value == "NaN"
    assert isinstance(info.value, errors.ColumnError) and isinstance(info.value, ValueError)
    with pytest.raises(errors.NonNumericColumn):
        validate_columns(parse_dataset(COLUMNS), "y")  # "name" is a string column


def test_validate_columns_missing_values() -> None:
    dataset = parse_dataset(COLUMNS)
    with pytest.raises(errors.MissingValues) as info:
        validate_columns(dataset, "y", ["x1", "gap"])
    assert (info.value.column, info.value.line, info.value.count) == ("gap", 2, 1)


def test_validate_columns_other_misuse() -> None:
    dataset = parse_dataset(COLUMNS)
    with pytest.raises(errors.InvalidTarget):
        validate_columns(dataset, "y", ["x1", "y"])
    with pytest.raises(errors.ColumnError):
        validate_columns(dataset, "y", ["x1", "x1"])
    with pytest.raises(errors.ColumnError):
        validate_columns(dataset, "y", [])
    with pytest.raises(errors.ColumnError):
        validate_columns(dataset, "y", "x1")  # type: ignore[arg-type]

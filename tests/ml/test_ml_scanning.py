"""The streaming scan (ml.scanning) against the old in-memory parser, engine by engine.

For the same bytes, the old parser (kept in tests/ml/_datasets_v1.py), the native engine and the
pure-Python engine must agree on everything: content hash, schema hash, column types, parsed
values, start lines, row digests, and, for a bad file, the error (class, message, attributes).
Hand-picked files cover each rule; generated files (hypothesis) cover the combinations, with the
native engine fed in chunks of a few bytes so that every boundary case is crossed.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ml.scanning as scanning
from ml import _csvref, _scan_engines, errors
from ml.datasets import Limits, canonical_row_bytes, load_dataset, parse_dataset
from ml.hashing import sha256_bytes
from ml.scanning import (
    ScanProgress,
    iter_rows,
    read_rows,
    read_schema,
    read_table,
    scan_bytes,
    scan_file,
)
from tests.ml._datasets_v1 import parse_dataset_v1

ENGINES = ["native", "python"]
native_only = pytest.mark.skipif(
    scanning.default_engine() != "native", reason="ml._csvcore is not built"
)


def test_the_native_engine_is_built() -> None:
    """The suite is about the native engine; without it registration is ~30 times slower."""
    assert scanning.default_engine() == "native", "build it: pip install -e . (see pyproject)"


def _error(exc: BaseException) -> tuple[Any, ...]:
    attrs = {k: v for k, v in vars(exc).items() if k != "message"}
    return ("error", type(exc).__name__, str(exc), attrs)


def old(data: bytes, limits: Limits = Limits()) -> tuple[Any, ...]:
    try:
        dataset = parse_dataset_v1(data, limits=limits)
        digests = dataset.row_digests()
    except errors.MlError as exc:
        return _error(exc)
    return (
        "ok",
        dataset.content_hash,
        dataset.schema_hash,
        dataset.columns,
        dataset.rows,
        dataset.lines,
        b"".join(digests),
    )


def new(data: bytes, engine: str, limits: Limits = Limits()) -> tuple[Any, ...]:
    digests: list[bytes] = []
    try:
        scan = scan_bytes(data, limits, digests=digests.append, engine=engine)  # type: ignore[arg-type]
        table = read_table(data, limits, engine=engine)  # type: ignore[arg-type]
    except errors.MlError as exc:
        return _error(exc)
    assert table.schema.content_hash == scan.content_hash
    assert table.schema.columns == scan.columns
    return (
        "ok",
        scan.content_hash,
        scan.schema_hash,
        scan.columns,
        table.rows,
        table.lines,
        b"".join(digests),
    )


def same_everywhere(data: bytes, limits: Limits = Limits()) -> tuple[Any, ...]:
    expected = old(data, limits)
    for engine in ENGINES:
        if engine == "native" and scanning.default_engine() != "native":
            continue
        assert new(data, engine, limits) == expected, engine
    return expected


# --------------------------------------------------------------------------- files of each kind

FILES = {
    "numeric": b"id,a,b,c,d\n0,0,0,0.0,0\n1,1,7,0.5,1\n2,2,14,1.0,0\n3,3,21,1.5,1\n",
    "text": b'name,city,note\nann,paris,"likes ""quotes"""\nbob,"new york, ny",\ncy,,"a\tb"\n',
    "quoted commas and newlines": b'a,b\n"x,y","line 1\nline 2"\n"z","\r\nstill z"\n',
    "bom": b"\xef\xbb\xbfa,b\n1,2\n",
    "crlf": b"a,b\r\n1,x\r\n2,y\r\n",
    "lone cr": b"a,b\r1,x\r2,y\r",
    "missing values": b"i,f,b,s\n1,,true,\n,2.5,,x\n,,,\n",
    "single column": b"only\n1\n2\n3\n",
    "single row": b"a,b,c\n1,2.5,z\n",
    "no trailing newline": b"a,b\n1,2\n3,4",
    "unicode": "naïve,名前\nçà,日本\n😀,é\n".encode(),
    "control characters": b'a\n"\x01\x1f\x7f"\n"\\\\ and /"\n',
    "floats": b"f\n0.1\n1e-05\n1e16\n1234567890123456\n-0\n0.000\n1.50000\n3e308\n1e-400\n",
    "long floats": b"f\n0.12345678901234567\n9007199254740993\n2.2250738585072014e-308\n5e-324\n",
    "integers": b"i\n-0\n0\n12345678901234567890123\n-7\n",
    "booleans": b'b\nTRUE\nfalse\nTrue\n""\n',
    "mixed becomes string": b"a,b,c\ntrue,1,1e400\n1,NaN,2\n",
    "header of numbers": b"1,2.5\n3,4\n",
}


@pytest.mark.parametrize("name", list(FILES))
def test_each_kind_of_file_agrees_with_the_old_parser(name: str) -> None:
    outcome = same_everywhere(FILES[name])
    assert outcome[0] == "ok" or name == "header of numbers", outcome


FAILURES = {
    b"": "EmptyFile",
    b"\xef\xbb\xbf": "NoHeader",
    b"\n1,2\n": "NoHeader",
    b"a,,c\n1,2,3\n": "InvalidColumnName",
    b"a,b,a\n1,2,3\n": "DuplicateColumns",
    b"a,b\n1,2\n3\n": "RaggedRow",
    b'a,b\n1,"x\ny"\n\n': "RaggedRow",
    b"a\n1\n\xff\n": "UndecodableText",
    b"\xff\xfea\x00\n\x00": "UndecodableText",
    b"a\n\xe2\x82": "UndecodableText",
    b"a\n\xed\xa0\x80\n": "UndecodableText",
    b'a,b\n1,"open\n': "MalformedCsv",
    b'a\n"x"y\n': "MalformedCsv",
    b'"a"b\n1\n': "MalformedCsv",
    b"a,b\n1,\x002\n": "MalformedCsv",
    b'a\n1\n"x"y\n\x00': "MalformedCsv",
    b"a\n\x00\n\xff": "UndecodableText",
    b"a,b\n": "NoRows",
    b"a,b": "NoRows",
    b"f,g\n1.5,x\n" + b"9" * 400 + b",y\n": "CanonicalJsonError",
}


@pytest.mark.parametrize(
    "data", list(FAILURES), ids=[f"{v}-{i}" for i, v in enumerate(FAILURES.values())]
)
def test_each_failure_is_the_old_error(data: bytes) -> None:
    outcome = same_everywhere(data)
    assert outcome[:2] == ("error", FAILURES[data]), outcome


LIMIT_CASES = [
    (Limits(max_bytes=10), "max_bytes"),
    (Limits(max_rows=1), "max_rows"),
    (Limits(max_columns=2), "max_columns"),
    (Limits(max_cells=5), "max_cells"),
    (Limits(max_field_chars=2), "max_field_chars"),
]


@pytest.mark.parametrize(("limits", "limit"), LIMIT_CASES, ids=[c[1] for c in LIMIT_CASES])
def test_every_limit_is_refused_as_before(limits: Limits, limit: str) -> None:
    outcome = same_everywhere(b"a,b,c\n1,2,3\n4,5,666\n", limits)
    assert outcome[:2] == ("error", "TooLarge") and outcome[3]["limit"] == limit


def test_the_csv_field_limit_is_the_max_field_chars_refusal() -> None:
    data = b"a,b\n" + b"x" * 131_073 + b",1\n"
    outcome = same_everywhere(data, Limits(max_field_chars=131_072))
    assert outcome[:2] == ("error", "TooLarge") and outcome[3]["actual"] is None


@pytest.mark.parametrize("engine", ENGINES)
def test_an_integer_past_pythons_digit_cap_is_refused_not_crashed(engine: str) -> None:
    """The old parser raised a bare ValueError (int() refuses over 4,300 digits): a 500. Now a
    413 that names the limit, from either engine."""
    if engine == "native" and scanning.default_engine() != "native":
        pytest.skip("ml._csvcore is not built")
    data = b"i\n" + b"7" * 5000 + b"\n"
    with pytest.raises(errors.TooLarge) as info:
        scan_bytes(data, engine=engine)  # type: ignore[arg-type]
    assert (info.value.limit, info.value.actual) == ("int_max_str_digits", 5000)


# --------------------------------------------------------------------------- generated files

TOKENS = [
    b"a", b"b", b"1", b"-0", b"0", b"2.5", b"-1e3", b"1e400", b"007", b"true", b"FALSE", b"NaN",
    b"", b",", b",", b",", b'"', b'""', b'"x"', b'"a,b"', b'"q\nq"', b"\n", b"\n", b"\r\n", b"\r",
    b" ", b"\xc3\xa9", b"\xe6\x97\xa5", b"\xf0\x9f\x98\x80", b"\xef\xbb\xbf", b"\x01", b"\\",
]  # fmt: skip
RARE = [b"\x00", b"\xff", b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80"]
raw_files = st.lists(st.sampled_from(TOKENS * 6 + RARE), max_size=40).map(b"".join)
cells = st.one_of(
    st.sampled_from([b"", b"1", b"-2", b"3.25", b"1e-7", b"true", b"False", b"x", b'"y,z"']),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: repr(f).encode()),
    st.integers(-(10**20), 10**20).map(lambda i: str(i).encode()),
)
tables = st.tuples(
    st.integers(1, 4), st.lists(st.lists(cells, min_size=4, max_size=4), min_size=1, max_size=8)
).map(
    lambda t: b"".join(
        b",".join(row[: t[0]]) + b"\n" for row in [[b"h1", b"h2", b"h3", b"h4"], *t[1]]
    )
)
SMALL = Limits(max_rows=4, max_columns=3, max_cells=9, max_field_chars=6)
GENERATED = settings(
    max_examples=int(os.environ.get("SCAN_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@GENERATED
@given(data=raw_files, small=st.booleans())
def test_generated_bytes_agree_with_the_old_parser(data: bytes, small: bool) -> None:
    same_everywhere(data, SMALL if small else Limits())


@GENERATED
@given(data=tables)
def test_generated_tables_agree_with_the_old_parser(data: bytes) -> None:
    same_everywhere(data)


@native_only
@GENERATED
@given(data=st.one_of(raw_files, tables), chunk=st.integers(1, 7))
def test_chunk_boundaries_change_nothing(data: bytes, chunk: int) -> None:
    expected = new(data, "native")
    saved = _scan_engines.CHUNK, _csvref._CHUNK
    _scan_engines.CHUNK = _csvref._CHUNK = chunk
    try:
        assert new(data, "native") == expected
        assert new(data, "python") == expected
    finally:
        _scan_engines.CHUNK, _csvref._CHUNK = saved


float_tokens = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.builds(
        lambda sign, whole, frac, exp: f"{sign}{whole}{frac}{exp}",
        st.sampled_from(["", "-"]),
        st.one_of(st.just("0"), st.integers(1, 10**25).map(str)),
        st.one_of(
            st.just(""), st.text("0123456789", min_size=1, max_size=25).map(lambda d: "." + d)
        ),
        st.one_of(st.just(""), st.integers(-340, 340).map(lambda e: f"e{e:+d}")),
    ),
)


@GENERATED
@given(tokens=st.lists(float_tokens, min_size=1, max_size=20))
def test_floats_are_written_as_python_repr(tokens: list[str]) -> None:
    data = ("f\n" + "".join(f"{t}\n" for t in tokens) + "0.5\n").encode()
    outcome = same_everywhere(data)
    if outcome[0] == "ok" and outcome[3][0].type == "float":
        expected = [sha256_bytes(canonical_row_bytes((float(t),))) for t in [*tokens, "0.5"]]
        if all(math.isfinite(float(t)) for t in tokens):
            assert outcome[6] == b"".join(expected)


# --------------------------------------------------------------------------- the scan's own API


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.csv"
    lines = ["id,x,label,note"] + [
        f'{i},{i * 0.25},{"ab"[i % 2]},"{"multi" if i % 7 == 0 else "one"}\nline"'
        for i in range(5_000)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("engine", ENGINES)
def test_scan_file_digests_locators_and_reading_rows_back(big_file: Path, engine: str) -> None:
    if engine == "native" and scanning.default_engine() != "native":
        pytest.skip("ml._csvcore is not built")
    digests: list[bytes] = []
    scan = scan_file(big_file, digests=digests.append, engine=engine)  # type: ignore[arg-type]
    dataset = load_dataset(big_file)
    assert scan.content_hash == hashlib.sha256(big_file.read_bytes()).digest()
    assert (scan.columns, scan.row_count, scan.schema_hash) == (
        dataset.columns, dataset.row_count, dataset.schema_hash,
    )  # fmt: skip
    assert b"".join(digests) == b"".join(dataset.row_digests())
    assert scan.locator_stride == 64 and len(scan.locators) == 8 * math.ceil(5_000 / 64)
    for index in (0, 1, 63, 64, 65, 2_500, 4_999):
        offset, skip = scan.locator(index)
        [(values, digest)] = read_rows(
            big_file,
            scan.columns,
            offset=offset,
            skip=skip,
            count=1,
            engine=engine,  # type: ignore[arg-type]
        )
        assert values == dataset.rows[index]
        assert digest == dataset.row_digests()[index]
    assert list(iter_rows(big_file, scan.columns, engine=engine)) == list(dataset.rows)  # type: ignore[arg-type]
    schema = read_schema(big_file, engine=engine)  # type: ignore[arg-type]
    assert (schema.columns, schema.row_count, schema.content_hash) == (
        scan.columns, scan.row_count, scan.content_hash,
    )  # fmt: skip
    assert scan.summary() == dataset.summary()


def test_progress_reports_bytes_and_rows_of_both_passes(big_file: Path) -> None:
    seen: list[ScanProgress] = []
    scan = scan_file(big_file, progress=seen.append)
    size = big_file.stat().st_size
    assert {p.phase for p in seen} == {"types", "rows"}
    for phase in ("types", "rows"):
        mine = [p for p in seen if p.phase == phase]
        assert mine[-1].bytes_done == size and all(p.bytes_total == size for p in mine)
        assert [p.bytes_done for p in mine] == sorted(p.bytes_done for p in mine)
    assert seen[-1].rows <= scan.row_count


def test_a_file_that_changes_between_the_passes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "moving.csv"
    path.write_bytes(b"a,b\n1,2\n3,4\n")

    def tamper(progress: ScanProgress) -> None:
        if progress.phase == "types":
            with open(path, "r+b") as handle:
                handle.write(b"a,b\n1,2\n3,5\n")

    with pytest.raises(errors.DatasetChanged, match="changed while it was being read"):
        scan_file(path, progress=tamper)


def test_rows_count_must_fit_the_file_size_limit_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(b"a\n" + b"1\n" * 50)
    with pytest.raises(errors.TooLarge) as info:
        scan_file(path, Limits(max_bytes=10))
    assert (info.value.limit, info.value.actual) == ("max_bytes", 102)


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="engine must be one of"):
        scan_bytes(b"a\n1\n", engine="fast")  # type: ignore[arg-type]


def test_parse_dataset_is_the_scan() -> None:
    data = FILES["text"]
    dataset = parse_dataset(data)
    table = read_table(data)
    assert dataset.rows == table.rows and dataset.columns == table.schema.columns

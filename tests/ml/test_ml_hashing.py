"""Content hashes match sha256sum; canonical JSON has exactly one encoding per value."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
from collections import OrderedDict
from collections.abc import Mapping
from enum import IntEnum
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.errors import CanonicalJsonError, MlError
from ml.hashing import (
    MAX_DEPTH,
    canonical_json,
    canonical_json_rows,
    canonical_json_values,
    from_hex,
    normalize_hex,
    sha256_bytes,
    sha256_file,
    to_hex,
)

SHA256SUM = shutil.which("sha256sum")


def _sha256sum(path: Path) -> bytes:
    out = subprocess.run([SHA256SUM, str(path)], check=True, capture_output=True, text=True)
    return bytes.fromhex(out.stdout.split()[0])


@pytest.mark.skipif(SHA256SUM is None, reason="sha256sum not installed")
@pytest.mark.parametrize("size", [0, 1, 3 * 1024 * 1024 + 17])
def test_sha256_file_equals_sha256sum(tmp_path: Path, size: int) -> None:
    path = tmp_path / "blob"
    path.write_bytes(np.random.default_rng(size).bytes(size))
    digest = sha256_file(path)
    assert len(digest) == 32
    assert digest == _sha256sum(path)
    assert digest == hashlib.sha256(path.read_bytes()).digest()


def test_known_vectors() -> None:
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert sha256_bytes(b"").hex() == empty
    assert sha256_bytes(b"abc").hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_sha256_file_accepts_str_paths(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"x")
    assert sha256_file(os.fspath(path)) == sha256_bytes(b"x")


def test_hex_round_trip() -> None:
    digest = sha256_bytes(b"abc")
    assert to_hex(digest) == "0x" + digest.hex()
    assert from_hex(to_hex(digest)) == digest
    assert from_hex(digest.hex()) == digest
    with pytest.raises(CanonicalJsonError):
        from_hex("0x1234")
    with pytest.raises(CanonicalJsonError):
        from_hex("zz" * 32)


def test_canonical_json_sorts_keys_and_strips_whitespace() -> None:
    assert canonical_json({"b": 1, "a": [True, False, None], "c": {"z": "", "y": 2}}) == (
        b'{"a":[true,false,null],"b":1,"c":{"y":2,"z":""}}'
    )


def test_canonical_json_key_order_is_code_point_order() -> None:
    assert canonical_json({"b": 0, "B": 0, "é": 0, "a": 0}) == '{"B":0,"a":0,"b":0,"é":0}'.encode()


def test_canonical_json_floats_use_repr() -> None:
    values = [1.0, 0.1, 1e-05, -0.0, 1e16, 123456789.125, 5e-324, 2.5]
    assert canonical_json(values) == b"[1.0,0.1,1e-05,-0.0,1e+16,123456789.125,5e-324,2.5]"
    assert canonical_json(10**30) == b"1000000000000000000000000000000"


def test_canonical_json_utf8_and_escapes() -> None:
    # é as raw UTF-8; newline, quote, backslash and U+0001 escaped.
    assert canonical_json('é\n"\\\x01') == b'"\xc3\xa9\\n\\"\\\\\\u0001"'


def test_canonical_json_numpy_scalars_and_tuples() -> None:
    assert (
        canonical_json(
            [np.float64(0.5), np.float32(0.5), np.int64(7), np.bool_(True), np.str_("s"), (1, 2)]
        )
        == b'[0.5,0.5,7,true,"s",[1,2]]'
    )


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), np.float64("nan")])
def test_canonical_json_rejects_non_finite(bad: float) -> None:
    with pytest.raises(CanonicalJsonError, match="NaN/Infinity"):
        canonical_json({"x": [bad]})


@pytest.mark.parametrize(
    "bad", [{1: "a"}, {"a": b"bytes"}, {"a": {1, 2}}, object(), np.zeros(2), "\ud800"]
)
def test_canonical_json_rejects_what_it_cannot_encode_uniquely(bad: object) -> None:
    with pytest.raises(CanonicalJsonError) as info:
        canonical_json(bad)
    assert isinstance(info.value, MlError) and isinstance(info.value, ValueError)
    assert str(info.value)


# --------------------------------------------------------------------------- pinned bytes
# The encoder became one call into json's C encoder (plus a key check); these bytes are what
# the recursive encoder it replaced wrote, so any drift shows here.

METADATA_LIKE = {
    "format": "provenance-ledger/training-metadata",
    "format_version": 1,
    "algorithm": "logistic_regression",
    "task": "classification",
    "datasets": [{"content_hash": "0x" + "ab" * 32, "row_count": 6}],
    "params": {
        "C": 1.0,
        "tol": 0.0001,
        "max_iter": 100,
        "l1_ratio": None,
        "penalty": "deprecated",
        "fit_intercept": True,
        "class_weight": None,
    },
    "requested_params": {},
    "features": ["x1", "x2"],
    "target": "label",
    "split": {"seed": 0, "test_size": 0.2, "shuffle": True, "train_rows": 4, "test_rows": 2},
    "metrics": {"accuracy": 0.5, "f1": 0.6666666666666666, "roc_auc": None},
    "classes": ["a", "b"],
    "warnings": [],
    "versions": {"python": "3.11.9", "numpy": "2.4.6"},
}
METADATA_LIKE_BYTES = (
    b'{"algorithm":"logistic_regression","classes":["a","b"],"datasets":[{"content_hash":"0x'
    + b"ab" * 32
    + b'","row_count":6}],"features":["x1","x2"],"format":"provenance-ledger/training-metadata",'
    b'"format_version":1,"metrics":{"accuracy":0.5,"f1":0.6666666666666666,"roc_auc":null},'
    b'"params":{"C":1.0,"class_weight":null,"fit_intercept":true,"l1_ratio":null,'
    b'"max_iter":100,"penalty":"deprecated","tol":0.0001},"requested_params":{},'
    b'"split":{"seed":0,"shuffle":true,"test_rows":2,"test_size":0.2,"train_rows":4},'
    b'"target":"label","task":"classification","versions":{"numpy":"2.4.6","python":"3.11.9"},'
    b'"warnings":[]}'
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (METADATA_LIKE, METADATA_LIKE_BYTES),
        (
            [0.1, 1e-05, -0.0, 1e300, 1e16, 5e-324, 1.7976931348623157e308],
            b"[0.1,1e-05,-0.0,1e+300,1e+16,5e-324,1.7976931348623157e+308]",
        ),
        (
            [2**70, -(10**30), 0, -1],
            b"[1180591620717411303424,-1000000000000000000000000000000,0,-1]",
        ),
        (
            {"s": "\x1f\x7f\u2028😀日本", "e": "\t\r\b\f/"},
            b'{"e":"\\t\\r\\b\\f/","s":"\\u001f\x7f\xe2\x80\xa8\xf0\x9f\x98\x80\xe6\x97\xa5\xe6\x9c\xac"}',
        ),
        (
            [[], [[1.5]], {}, (), [None, [True, [False]]]],
            b"[[],[[1.5]],{},[],[null,[true,[false]]]]",
        ),
        ({"é": {"b": [{"y": 1, "x": (2, 3)}]}, "a": ""}, '{"a":"","é":{"b":[{"x":[2,3],"y":1}]}}'),
        (3.25, b"3.25"),
        (-0.0, b"-0.0"),
        (7, b"7"),
        ("", b'""'),
        (None, b"null"),
    ],
)
def test_canonical_json_bytes_are_pinned(value: object, expected: bytes | str) -> None:
    pinned = expected.encode() if isinstance(expected, str) else expected
    assert canonical_json(value) == pinned
    assert canonical_json(value) == _reference(value)


def test_other_mappings_and_numpy_values_encode_as_their_plain_equivalent() -> None:
    class Colour(IntEnum):
        RED = 3

    plain = {"a": [4, 0.5], "z": {"k": True}}
    odd = OrderedDict(z=MappingProxyType({"k": np.bool_(True)}), a=(np.int32(4), np.array(0.5)))
    assert canonical_json(odd) == canonical_json(plain) == b'{"a":[4,0.5],"z":{"k":true}}'
    assert canonical_json([Colour.RED, np.uint64(2**64 - 1)]) == b"[3,18446744073709551615]"
    assert canonical_json({np.str_("k"): np.float16(0.1)}) == b'{"k":0.0999755859375}'
    # A 0-d object array is the value it holds, and that value obeys the same rules.
    assert canonical_json([np.array({"b": (1,)}, dtype=object)]) == b'[{"b":[1]}]'
    with pytest.raises(CanonicalJsonError, match=r"\$\[0\] has a non-string key 1"):
        canonical_json([np.array({1: "a"}, dtype=object)])


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ({"a": [{"b": {1: "x"}}]}, "$.a[0].b has a non-string key 1"),
        ([{"ok": 1}, {True: 1}], "$[1] has a non-string key True"),
        ({"a": 1, 2: 3}, "has a non-string key 2"),  # mixed keys: json cannot even sort them
        ({None: 0}, "$ has a non-string key None"),
        ({(1, 2): 0}, "$ has a non-string key (1, 2)"),
        ({"x": {"y": [1.0, float("-inf")]}}, "$.x.y[1] is -inf"),
        ({"m": np.float32("nan")}, "$.m is nan"),
        ({"b": bytearray(b"x")}, "$.b is a bytearray"),
        ([np.longdouble(1.5)], "$[0] is a longdouble"),
        ({"d": np.datetime64("2020-01-01")}, "$.d is a date"),
        ({"k": "ok", "\udc00": 1}, "lone surrogate"),
    ],
)
def test_refusals_say_where(bad: object, where: str) -> None:
    with pytest.raises(CanonicalJsonError) as info:
        canonical_json(bad)
    assert where in str(info.value)


def test_a_value_that_contains_itself_or_nests_too_deep_is_refused() -> None:
    loop: list[object] = []
    loop.append({"again": loop})
    with pytest.raises(CanonicalJsonError, match="contains itself"):
        canonical_json(loop)
    wide: list[object] = []
    wide.extend([wide, wide, wide])  # refused in a few hundred steps, not 3**256
    with pytest.raises(CanonicalJsonError, match="contains itself"):
        canonical_json(wide)
    # Far deeper than the C stack holds once py-evm has raised the recursion limit (the test
    # session imports it): refused before the encoder runs, not a crash.
    deep: list[object] = []
    for _ in range(200_000):
        deep = [deep]
    with pytest.raises(CanonicalJsonError, match="nested more than 256 levels deep"):
        canonical_json(deep)


def _nested(levels: int, leaf: object) -> object:
    value = leaf
    for level in range(levels):
        value = [value] if level % 2 else {"k": value}
    return value


def test_the_depth_limit_counts_containers() -> None:
    assert MAX_DEPTH == 256
    for leaf in (1, np.float64(0.5), "s", None):
        assert canonical_json(_nested(MAX_DEPTH, leaf)) == _reference(_nested(MAX_DEPTH, leaf))
    with pytest.raises(CanonicalJsonError, match="nested more than"):
        canonical_json(_nested(MAX_DEPTH + 1, 1))
    with pytest.raises(CanonicalJsonError, match="nested more than"):
        canonical_json(_nested(MAX_DEPTH, []))


# --------------------------------------------------------------------------- property


def _reference(obj: object) -> bytes:
    """The recursive encoder canonical_json replaced, rule by rule (the module docstring)."""
    if type(obj).__module__ == "numpy" and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()  # type: ignore[attr-defined]
    if obj is None or isinstance(obj, bool):
        return {None: b"null", True: b"true", False: b"false"}[obj]
    if isinstance(obj, int):
        return str(int(obj)).encode()
    if isinstance(obj, float):
        assert math.isfinite(obj)
        return repr(float(obj)).encode()
    if isinstance(obj, str):
        return json.dumps(obj, ensure_ascii=False).encode()
    if isinstance(obj, Mapping):
        assert all(isinstance(key, str) for key in obj)
        return (
            b"{" + b",".join(_reference(k) + b":" + _reference(obj[k]) for k in sorted(obj)) + b"}"
        )
    assert isinstance(obj, list | tuple)
    return b"[" + b",".join(_reference(item) for item in obj) + b"]"


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.sampled_from([np.float64(0.1), np.int64(-3), np.bool_(False), np.float32(1e-5)])
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(_JSON)
def test_canonical_json_equals_the_reference_encoder(value: object) -> None:
    assert canonical_json(value) == _reference(value)
    assert json.loads(canonical_json(value)) == json.loads(_reference(value))


@settings(max_examples=150, deadline=None)
@given(_JSON, st.sampled_from([1, 1.5, True, None, (1,)]))
def test_a_non_string_key_anywhere_is_refused(value: object, key: object) -> None:
    with pytest.raises(CanonicalJsonError, match="non-string key"):
        canonical_json([value, {"wrap": {key: value}}])


# --------------------------------------------------------------------------- hex


def test_normalize_hex_gives_one_spelling() -> None:
    digest = sha256_bytes(b"abc")
    spelled = to_hex(digest)
    for variant in (
        spelled,
        spelled.upper().replace("0X", "0x"),
        "0X" + digest.hex(),
        digest.hex(),
    ):
        assert normalize_hex(variant) == spelled
    assert normalize_hex(digest) == spelled
    assert normalize_hex(bytearray(digest)) == spelled
    for bad in ("0x1234", "zz" * 32, b"\x00" * 31):
        with pytest.raises(CanonicalJsonError):
            normalize_hex(bad)


# -- canonical_json_rows: a request's flat rows through orjson, each exactly canonical_json --

_row_keys = st.text(alphabet=st.sampled_from(list('ab}{,":\\é\n')), max_size=4)
_row_values = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.text(alphabet=st.sampled_from(list('x},{"')), max_size=3),  # not flat: row by row
)


@settings(max_examples=300, deadline=None, database=None)
@given(rows=st.lists(st.dictionaries(_row_keys, _row_values, max_size=4), max_size=5))
def test_canonical_json_rows_equals_canonical_json_of_each(rows: list[dict[str, object]]) -> None:
    assert canonical_json_rows(rows) == [canonical_json(row) for row in rows]


@pytest.mark.parametrize(
    "rows",
    [
        [{"a": 1.0, "b": 2}, {"b": True, "a": None}],  # flat: one encoder call
        [{}, {}, {"x": -0.0}],
        [{"a},{": 1}, {"b": 2}],  # a brace in a key
        [{"a": 1}, {"b": {"c": 2}}],  # not flat: row by row
        [{"a": 9.99e-05, "b": 0.5}, {"a": 0.0, "b": -0.0}],  # below 1e-4: json's form
        [{"a": 1e-07}, {"a": 2**64}, {"a": -(2**63) - 1}],  # past orjson's integers
        [{"a": 2**64 - 1, "b": -(2**63)}, {"x": 1e16, "y": 123456789012345.0}],
        [{"a": 1.0, "b": "text"}],  # a string value: canonical_json
    ],
)
def test_canonical_json_rows_known_rows(rows: list[dict[str, object]]) -> None:
    assert canonical_json_rows(rows) == [canonical_json(row) for row in rows]


def _scales() -> list[float]:
    """Floats at every power of ten a double has, with their neighbours, both signs."""
    values = [0.0, -0.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308]
    for exponent in range(-323, 309):
        for mantissa in ("1", "2.5", "9.999999999999998", "1.0000000000000002", "3.14159"):
            value = float(f"{mantissa}e{exponent}")
            if math.isfinite(value):
                values += [value, math.nextafter(value, 0.0), math.nextafter(value, math.inf)]
    return values + [-v for v in values]


def test_canonical_json_rows_writes_floats_of_every_scale_as_canonical_json() -> None:
    """orjson's float text is json's from 1e-4 up; every scale, around every boundary (1e-4,
    1e16 where ``repr`` turns to exponents), in rows of one value and of ten."""
    values = _scales()
    rows = [{"v": v} for v in values]
    assert canonical_json_rows(rows) == [canonical_json(row) for row in rows]
    wide = [{f"f{k}": values[(i + k) % len(values)] for k in range(10)} for i in range(len(values))]
    assert canonical_json_rows(wide) == [canonical_json(row) for row in wide]


def test_canonical_json_values_writes_every_scale_as_canonical_json() -> None:
    """A request's outputs: lists of floats of every scale (one orjson call where all are
    from 1e-4 up, value by value otherwise), and lists of other values."""
    values = _scales()
    large = [v for v in values if v == 0.0 or abs(v) >= 1e-4]
    for chunk in (values, large, [v for v in large if v != 0.0], [1.5], [1e-05, 2.0]):
        assert canonical_json_values(chunk) == [canonical_json(v) for v in chunk]
    mixed = [1.0, 2, True, None, "a", {"label": 1, "probabilities": {"0": 0.25}}]
    assert canonical_json_values(mixed) == [canonical_json(v) for v in mixed]
    assert canonical_json_values([]) == []
    with pytest.raises(CanonicalJsonError):
        canonical_json_values([1.0, math.nan])


@settings(max_examples=500, deadline=None, database=None)
@given(
    rows=st.lists(
        st.dictionaries(
            st.text(max_size=6),  # any code point but lone surrogates: escaping and key order
            st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**64), 2**64),
            max_size=12,
        ),
        min_size=1,
        max_size=8,
    )
)
def test_canonical_json_rows_equals_canonical_json_on_any_keys_and_numbers(
    rows: list[dict[str, object]],
) -> None:
    assert canonical_json_rows(rows) == [canonical_json(row) for row in rows]


def test_canonical_json_rows_escapes_keys_as_canonical_json() -> None:
    """Every character class a key may hold: controls, quote, backslash, DEL, line separators,
    the last BMP and the first and last astral code points."""
    keys = [chr(c) for c in [*range(0x20), 0x22, 0x2F, 0x5C, 0x7F, 0x80, 0xFF, 0x2028, 0x2029]]
    keys += ["\ufffd", "\uffff", "\U00010000", "\U0010ffff", "é", "a\u0000b", ""]
    rows = [{key: 1.5, key + "x": 2} for key in keys]
    rows.append({key: 0.25 for key in keys})  # one row: sorted by code point
    assert canonical_json_rows(rows) == [canonical_json(row) for row in rows]


@pytest.mark.parametrize(
    "bad",
    [
        [{"a": 1.0}, {"a": math.nan}],
        [{"a": 1.0, "b": math.inf}],
        [{"a": 1, "b": -math.inf}],
        [{"\ud800": 1}],
        [{1: 2}],
        [{"a": 1.0}, {2.5: 1.0}],
    ],
)
def test_canonical_json_rows_refuses_as_canonical_json_does(
    bad: list[dict[object, object]],
) -> None:
    with pytest.raises(CanonicalJsonError) as rows_error:
        canonical_json_rows(bad)
    with pytest.raises(CanonicalJsonError) as each_error:
        [canonical_json(row) for row in bad]
    assert str(rows_error.value) == str(each_error.value)

"""The prediction route's lean path (``api/routes/_lean_predict.py``, issue 26) accepts only
bodies that FastAPI + pydantic accept unchanged, and reads them as they do.

Every refusal of a predict body is still FastAPI's (the lean path hands every body it does not
accept to it): ``test_api_numbers.py``, ``test_api_models.py`` and ``test_receipts_api.py``
pin those answers. Here: whatever the lean path accepts, Python's ``json`` + ``PredictCreate``
accept too, with the same values of the same types (so the same canonical JSON, the same input
hashes); and the bodies a client sends every day do take the lean path.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.routes._lean_predict import lean_rows
from api.schemas import PredictCreate
from ml.hashing import canonical_json

JSON = "application/json"


def _full(body: bytes) -> list[dict[str, Any]] | None:
    """What FastAPI's path makes of ``body``: the validated rows, or None when refused."""
    try:
        return PredictCreate.model_validate(json.loads(body)).rows
    except ValueError:  # json.JSONDecodeError and pydantic's ValidationError
        return None


def _same(lean: list[dict[str, Any]], full: list[dict[str, Any]]) -> None:
    assert [canonical_json(row) for row in lean] == [canonical_json(row) for row in full]
    for lean_row, full_row in zip(lean, full, strict=True):
        assert list(lean_row) == list(full_row)
        assert [type(v) for v in lean_row.values()] == [type(v) for v in full_row.values()]


@pytest.mark.parametrize(
    "body",
    [
        b'{"rows": [{"x1": 1.5, "x2": -2}]}',
        b'{"rows":[{"x1":0.1,"x2":3},{"x1":-0.0,"x2":5e-324}]}',
        b'{"rows": [{"a": true, "b": null, "c": "text", "d": 1e18}]}',
        b'{"rows": [{"x": 9223372036854775807}, {"x": 0.00012345678901234567}]}',
        b'{"rows": [{"x": -9223372036854775808, "y": 9.2e18}]}',
        b'{"rows": [{"x": 1}], "rows": [{"y": 2}]}',  # a repeated key: the last, as json's
        '{"rows": [{"é": 1.0, "名": 2}]}'.encode(),
    ],
)
def test_everyday_bodies_take_the_lean_path_with_the_same_rows(body: bytes) -> None:
    lean = lean_rows(JSON, body)
    full = _full(body)
    assert lean is not None and full is not None
    _same(lean, full)
    assert lean_rows("application/json; charset=utf-8", body) is not None
    assert lean_rows("application/vnd.api+json", body) is not None


@pytest.mark.parametrize(
    "content_type, body",
    [
        (JSON, b""),
        (None, b'{"rows": [{"x": 1}]}'),  # FastAPI reads no JSON without a content type
        ("text/plain", b'{"rows": [{"x": 1}]}'),
        (JSON, b'{"rows": []}'),  # min_length 1
        (JSON, b'{"rows": [{"x": 1}], "extra": 1}'),  # extra="forbid"
        (JSON, b'{"rows": {"x": 1}}'),
        (JSON, b'[{"x": 1}]'),
        (JSON, b'{"rows": [[1, 2]]}'),
        (JSON, b'{"rows": [{"x": [1]}]}'),
        (JSON, b'{"rows": [{"x": {"y": 1}}]}'),
        (JSON, b'{"rows": [{"": 1}]}'),  # ColumnName min_length 1
        (JSON, b'{"rows": [{"' + b"k" * 257 + b'": 1}]}'),  # max_length 256
        (JSON, b'{"rows": [{"x": NaN}]}'),  # json reads it; check_numbers refuses it
        (JSON, b'{"rows": [{"x": Infinity}]}'),
        (JSON, b'{"rows": [{"x": 1e400}]}'),
        # orjson would read these integers as floats: the full path keeps them integers
        (JSON, b'{"rows": [{"x": 18446744073709551616}]}'),
        (JSON, b'{"rows": [{"x": -9309660567069422392}]}'),
        (JSON, b'{"rows": [{"x": 1.5, "y": 18446744073709551616}]}'),
        (JSON, b'{"rows": [{"x": "a", "y": -18446744073709551616}]}'),
        (JSON, b'{"rows": [{"x": 1e19}]}'),  # a float that large: the full path reads it
        (JSON, b'{"rows": [{"x": "\\ud800"}]}'),  # a lone surrogate, which json reads
        (JSON, b'{"rows": [{"x": 1}]'),  # not JSON
        (JSON, '{"rows": [{"x": 1}]}'.encode("utf-16")),  # json reads UTF-16 too
    ],
)
def test_other_bodies_take_the_full_path(content_type: str | None, body: bytes) -> None:
    assert lean_rows(content_type, body) is None


_cells = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.booleans(),
    st.none(),
)
_rows = st.lists(st.dictionaries(st.text(max_size=4), _cells, max_size=4), min_size=0, max_size=4)


@settings(max_examples=300, deadline=None, database=None)
@given(rows=_rows, spaced=st.booleans())
def test_what_the_lean_path_accepts_the_full_path_reads_alike(
    rows: list[dict[str, Any]], spaced: bool
) -> None:
    separators = (", ", ": ") if spaced else (",", ":")
    body = json.dumps({"rows": rows}, separators=separators, ensure_ascii=spaced).encode()
    lean = lean_rows(JSON, body)
    if lean is None:
        return
    full = _full(body)
    assert full is not None, body
    _same(lean, full)

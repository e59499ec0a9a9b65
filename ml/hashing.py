"""Content hashes, canonical JSON and the hex form of a hash: the encodings that end up on chain.

Why this module is small and strict: anything hashed here is recomputed by an auditor with
other tools, years later. The file hash must be exactly what ``sha256sum`` prints, and
every JSON document whose hash is recorded must have one and only one byte encoding. It is
the one home of both formats: ``ledger`` imports it (receipts hash their input and output
with :func:`canonical_json`), ``ml`` never imports ``ledger``, and importing it stays light
(no numpy, no scikit-learn).

Canonical JSON, as produced by :func:`canonical_json`:

* objects have ``str`` keys only (at any depth), sorted by Unicode code point; no duplicates;
* no whitespace at all (separators ``,`` and ``:``);
* UTF-8 output; non-ASCII characters are written as themselves, and only ``"``, ``\\``
  and control characters below U+0020 are escaped (``\\n``, ``\\t``... or ``\\u00XX``),
  exactly as Python's :func:`json.dumps` with ``ensure_ascii=False`` does; a lone surrogate
  (not valid UTF-8) is rejected;
* ``true``/``false``/``null``; integers in plain decimal, any size;
* floats with Python's ``repr`` (the shortest string that reads back to the same double,
  e.g. ``1.0``, ``0.1``, ``1e-05``, ``-0.0``); NaN and infinities are rejected;
* tuples are arrays; any ``Mapping`` is an object; numpy scalars (and 0-d arrays) are
  accepted and written as their Python equivalent; anything else (bytes, sets, objects) is
  rejected: hex-encode bytes before hashing;
* containers nest at most :data:`MAX_DEPTH` (256) levels deep.

Every refusal is a :class:`~ml.errors.CanonicalJsonError` (a ``ValueError``) naming where in
the value the problem is (``$.a[2]``). It is re-exported here, so that ``ledger`` needs
nothing of ``ml`` but this module.

Speed: receipts hash two documents per prediction, so encoding is one call into the C
encoder of :mod:`json` (which already writes floats by ``repr`` and strings as above), after a
walk over the containers for the two rules that encoder does not enforce: it silently turns
``1``, ``1.5``, ``True`` or ``None`` keys into strings, and it recurses on the C stack. The
precise error message is worked out only once something has failed. A bare float (a
regressor's output) skips the encoder altogether.

Hex: a hash in a JSON document, a URL or a log is ``0x`` followed by 64 lowercase hex digits
(:func:`to_hex`); :func:`from_hex` reads it back and :func:`normalize_hex` turns any accepted
spelling (upper case, no prefix) into that one form.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

import orjson

from ml.errors import CanonicalJsonError

__all__ = [
    "MAX_DEPTH",
    "CanonicalJsonError",
    "canonical_json",
    "canonical_json_rows",
    "canonical_json_values",
    "from_hex",
    "normalize_hex",
    "sha256_bytes",
    "sha256_file",
    "to_hex",
]


def sha256_file(path: str | os.PathLike[str]) -> bytes:
    """Return the 32-byte SHA-256 of a file's exact bytes (what ``sha256sum`` prints).

    The file is streamed through :func:`hashlib.file_digest`, which reads into one fixed
    buffer, so memory stays flat however large the file is.
    """
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").digest()


def sha256_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """Return the 32-byte SHA-256 of ``data``."""
    return hashlib.sha256(data).digest()


# --------------------------------------------------------------------------- hex


def to_hex(digest: bytes | bytearray | memoryview) -> str:
    """Write bytes as ``0x``-prefixed lowercase hex, the form used in JSON documents."""
    return "0x" + bytes(digest).hex()


def from_hex(text: str) -> bytes:
    """Parse a 32-byte digest written as hex, with or without ``0x``; reject anything else."""
    body = text[2:] if text[:2] in ("0x", "0X") else text
    try:
        value = bytes.fromhex(body)
    except ValueError:
        raise CanonicalJsonError(f"{text!r} is not a hex string") from None
    if len(value) != 32:
        raise CanonicalJsonError(f"{text!r} is {len(value)} bytes long, a SHA-256 is 32")
    return value


def normalize_hex(value: str | bytes | bytearray | memoryview) -> str:
    """The one spelling of a 32-byte digest: ``0x`` + 64 lowercase hex digits.

    Accepts the 32 bytes themselves or hex with or without ``0x``, in any case, so that a
    hash typed by a person and one read from a document compare (and key a table) equal.
    """
    if isinstance(value, str):
        return to_hex(from_hex(value))
    if len(value) != 32:
        raise CanonicalJsonError(f"a SHA-256 is 32 bytes, got {len(value)}")
    return to_hex(value)


# --------------------------------------------------------------------------- canonical JSON


def _is_numpy_scalar(value: Any) -> bool:
    # numpy is not imported, so hashing stays light; 0-d arrays count as scalars.
    return (
        type(value).__module__ == "numpy"
        and hasattr(value, "item")
        and getattr(value, "ndim", 1) == 0
    )


def _plain(value: Any) -> Any:
    """``default`` hook of the encoder: the values the C encoder does not know natively."""
    if isinstance(value, Mapping):
        return dict(value)
    if _is_numpy_scalar(value):
        plain = value.item()
        # np.longdouble.item() is a longdouble again; a 0-d object array may hold a container,
        # which the shape walk has not seen yet.
        if type(plain).__module__ != "numpy" and (
            type(plain) in _LEAVES or _shape_problem(plain) is None
        ):
            return plain
    raise TypeError(f"{type(value).__name__} is not a canonical JSON value")


_ENCODER = json.JSONEncoder(
    ensure_ascii=False,
    allow_nan=False,
    sort_keys=True,
    separators=(",", ":"),
    default=_plain,
)
# Types the shape walk never needs to look inside.
_LEAVES = frozenset({str, int, float, bool, type(None)})
_STR_ONLY = frozenset({str})
_CONTAINERS = (Mapping, list, tuple)
# Deeper than any document we record (metadata is 3 levels deep). Checked before the C encoder
# runs, because that encoder recurses on the C stack: py-evm raises the recursion limit to
# 100,000 when it is imported, and then a deep enough value crashes the process instead of
# raising RecursionError.
MAX_DEPTH = 256


def canonical_json(obj: Any) -> bytes:
    """Encode ``obj`` as canonical JSON (see the module docstring for the exact rules).

    Used for every document whose hash goes on chain, so the same logical document always
    hashes the same, in any process, on any machine.

    Raises:
        CanonicalJsonError: ``obj`` holds something canonical JSON has no single form for,
            or is nested more than :data:`MAX_DEPTH` levels deep.
    """
    kind = type(obj)
    if kind is float and math.isfinite(obj):
        return float.__repr__(obj).encode()  # a regressor's output: skip the encoder
    if kind not in _LEAVES:
        shape = _shape_problem(obj)
        if shape == "depth":
            raise CanonicalJsonError(
                f"the value is nested more than {MAX_DEPTH} levels deep (or contains itself)"
            )
        if shape == "key":
            raise _refusal(obj, "an object has a non-string key")
    try:
        text = _ENCODER.encode(obj)
    except RecursionError:  # only when the caller is itself deep in recursion
        raise CanonicalJsonError("the value is nested too deeply to encode") from None
    except (TypeError, ValueError) as exc:
        raise _refusal(obj, f"not canonical JSON: {exc}") from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalJsonError(
            f"string contains a lone surrogate at character {exc.start}; it is not valid UTF-8"
        ) from None


_FLAT_VALUES = frozenset({int, float, bool, type(None)})
_FLOATS = {float}
_DICTS = {dict}
_ORJSON_SORTED = orjson.OPT_SORT_KEYS
# Below this magnitude orjson writes a float in another form than ``repr`` (``0.0000999`` or
# ``1e-7`` where Python writes ``9.99e-05`` and ``1e-07``); zero is written ``0.0`` by both.
_TINY = 1e-4


def _orjson_safe(values: Any) -> bool:
    """Whether orjson writes every value of a flat row exactly as ``json`` does: numbers,
    booleans and null only, every float finite and 0 or at least :data:`_TINY` in magnitude."""
    kinds = set(map(type, values))
    if kinds == _FLOATS:  # the usual row: three passes in C
        total = sum(values)  # NaN or an infinity makes it NaN or infinite (as may overflow)
        if total - total == 0.0 and min(map(abs, values)) >= _TINY:
            return True
    elif not _FLAT_VALUES.issuperset(kinds):
        return False
    return all(type(v) is not float or v == 0.0 or _TINY <= abs(v) < math.inf for v in values)


def canonical_json_rows(rows: Sequence[Any]) -> list[bytes]:
    """``[canonical_json(row) for row in rows]``, for the input rows of a prediction request.

    A flat ``dict`` row (``str`` keys; values that are numbers, booleans or null; every float
    finite and 0 or at least 1e-4 in magnitude) is written by orjson with ``OPT_SORT_KEYS``,
    several times faster than the C encoder of :mod:`json`, whose cost is Python's float
    ``repr``. Why the bytes are the same:

    * keys: orjson escapes exactly as ``json.dumps(ensure_ascii=False)`` (compared on every
      code point) and sorts by code point (UTF-8 byte order); a lone surrogate or a key that is
      not a ``str`` makes it raise, and the rows then take :func:`canonical_json`;
    * numbers: both write the shortest text that reads back to the same double, with the same
      digits and, from 1e-4 up, the same form (``0.0001``, ``1.0``, ``1e+16``...); integers in
      decimal (orjson refuses integers past 64 bits: those rows take :func:`canonical_json`).
      Below 1e-4 the forms differ, and NaN and infinities orjson would write as ``null``: rows
      holding one never reach it;
    * ``tests/ml/test_ml_hashing.py`` holds the two equal on random rows and on floats at every
      scale (orjson's version is pinned).

    Any other row takes :func:`canonical_json`, with its errors.
    """
    every_value = (  # the whole request checked in a few C passes, not row by row
        chain.from_iterable(map(dict.values, rows)) if set(map(type, rows)) == _DICTS else None
    )
    if every_value is None or not _orjson_safe(list(every_value)):
        return [
            _orjson_row(row)
            if type(row) is dict and _orjson_safe(row.values())
            else canonical_json(row)
            for row in rows
        ]
    try:
        return [orjson.dumps(row, option=_ORJSON_SORTED) for row in rows]
    except (TypeError, orjson.JSONEncodeError):  # a non-str key, a lone surrogate, a big int
        return [_orjson_row(row) for row in rows]


def canonical_json_values(values: Sequence[Any]) -> list[bytes]:
    """``[canonical_json(value) for value in values]``, for a request's outputs: a list of
    floats that orjson writes as ``json`` does (finite, 0 or at least 1e-4 in magnitude, see
    :func:`canonical_json_rows`) is written by one orjson call and cut at its commas, which no
    float's text holds; anything else value by value by :func:`canonical_json`."""
    if values and set(map(type, values)) == _FLOATS:
        total = sum(values)
        if total - total == 0.0 and min(map(abs, values)) >= _TINY:
            return orjson.dumps(values)[1:-1].split(b",")
    return [canonical_json(value) for value in values]


def _orjson_row(row: dict[str, Any]) -> bytes:
    """One row that :func:`_orjson_safe` passed, by orjson, else by :func:`canonical_json`."""
    try:
        return orjson.dumps(row, option=_ORJSON_SORTED)
    except (TypeError, orjson.JSONEncodeError):
        return canonical_json(row)


def _shape_problem(obj: Any) -> str | None:
    """``"key"`` if some object, at any depth, has a key that is not a ``str``; ``"depth"`` if
    containers nest deeper than :data:`MAX_DEPTH`; otherwise None.

    The two rules the C encoder does not enforce (it writes ``{1: "a"}`` as ``{"1":"a"}``,
    and it recurses on the C stack). Iterative and depth first, so a value that contains
    itself reaches the depth limit after a few hundred steps; whole dicts and lists of plain
    values are vetted by set operations in C, so a flat input row costs well under a
    microsecond.
    """
    if not isinstance(obj, _CONTAINERS):
        return None
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, Mapping):
            if not _STR_ONLY.issuperset(map(type, value)) and not all(
                isinstance(key, str) for key in value
            ):
                return "key"
            children: Any = value.values()
        else:
            children = value
        if _LEAVES.issuperset(map(type, children)):
            continue
        for child in children:
            if type(child) not in _LEAVES and isinstance(child, _CONTAINERS):
                if depth >= MAX_DEPTH:
                    return "depth"
                stack.append((child, depth + 1))
    return None


def _refusal(obj: Any, fallback: str) -> CanonicalJsonError:
    """The error for a refused ``obj``: where the problem is, when :func:`_problem` finds it."""
    try:
        found = _problem(obj)
    except RecursionError:
        found = None
    return CanonicalJsonError(found or fallback)


def _problem(obj: Any, where: str = "$", active: frozenset[int] = frozenset()) -> str | None:
    """Why ``obj`` is not canonical JSON, naming the place, or None if it is.

    The slow path: only run once the encoder (or the key walk) has refused ``obj``, to turn
    its terse complaint into a message that says where the problem is.
    """
    if _is_numpy_scalar(obj):
        obj = obj.item()
    if obj is None or isinstance(obj, bool | int | str):
        return None
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return f"{where} is {float(obj)!r}; canonical JSON has no NaN/Infinity"
        return None
    if isinstance(obj, Mapping | list | tuple):
        if id(obj) in active:
            return f"{where} contains itself"
        if len(active) >= MAX_DEPTH:
            return f"{where} is nested more than {MAX_DEPTH} levels deep"
        inner = active | {id(obj)}
        if isinstance(obj, Mapping):
            for key in obj:
                if not isinstance(key, str):
                    return f"{where} has a non-string key {key!r}"
            items = [(f"{where}.{key}", obj[key]) for key in sorted(obj)]
        else:
            items = [(f"{where}[{index}]", item) for index, item in enumerate(obj)]
        for place, item in items:
            found = _problem(item, place, inner)
            if found is not None:
                return found
        return None
    return f"{where} is a {type(obj).__name__}, which canonical JSON cannot encode"

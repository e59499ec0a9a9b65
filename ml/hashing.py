"""Content hashes and canonical JSON: the two encodings whose output ends up on chain.

Why this module is small and strict: anything hashed here is recomputed by an auditor with
other tools, years later. The file hash must be exactly what ``sha256sum`` prints, and
every JSON document whose hash is recorded must have one and only one byte encoding.

Canonical JSON, as produced by :func:`canonical_json`:

* objects have ``str`` keys only, sorted by Unicode code point; no duplicate keys;
* no whitespace at all (separators ``,`` and ``:``);
* UTF-8 output; non-ASCII characters are written as themselves, and only ``"``, ``\\``
  and control characters below U+0020 are escaped (``\\n``, ``\\t``... or ``\\u00XX``),
  exactly as Python's :func:`json.dumps` with ``ensure_ascii=False`` does;
* ``true``/``false``/``null``; integers in plain decimal, any size;
* floats with Python's ``repr`` (the shortest string that reads back to the same double,
  e.g. ``1.0``, ``0.1``, ``1e-05``, ``-0.0``); NaN and infinities are rejected;
* tuples are arrays; numpy scalars are accepted and written as their Python equivalent;
  anything else (bytes, sets, objects) is rejected: hex-encode bytes before hashing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from typing import Any

from ml.errors import CanonicalJsonError

__all__ = [
    "canonical_json",
    "from_hex",
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


def to_hex(digest: bytes) -> str:
    """Write a digest as ``0x``-prefixed lowercase hex, the form used in JSON documents."""
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


def canonical_json(obj: Any) -> bytes:
    """Encode ``obj`` as canonical JSON (see the module docstring for the exact rules).

    Used for every document whose hash goes on chain, so the same logical document always
    hashes the same, in any process, on any machine.
    """
    parts: list[str] = []
    _encode(obj, parts, "$")
    text = "".join(parts)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalJsonError(
            f"string contains a lone surrogate at character {exc.start}; it is not valid UTF-8"
        ) from None


def _encode(obj: Any, out: list[str], where: str) -> None:
    # Order matters: bool before int (bool is an int). numpy scalars become their Python
    # equivalent through .item(); numpy is not imported so hashing stays light.
    if type(obj).__module__ == "numpy" and hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if obj is None:
        out.append("null")
    elif isinstance(obj, bool):
        out.append("true" if obj else "false")
    elif isinstance(obj, int):
        out.append(str(obj))
    elif isinstance(obj, float):
        value = float(obj)
        if not math.isfinite(value):
            raise CanonicalJsonError(f"{where} is {value!r}; canonical JSON has no NaN/Infinity")
        out.append(repr(value))
    elif isinstance(obj, str):
        out.append(json.dumps(obj, ensure_ascii=False))
    elif isinstance(obj, Mapping):
        keys = list(obj.keys())
        for key in keys:
            if not isinstance(key, str):
                raise CanonicalJsonError(f"{where} has a non-string key {key!r}")
        out.append("{")
        for index, key in enumerate(sorted(keys)):
            if index:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _encode(obj[key], out, f"{where}.{key}")
        out.append("}")
    elif isinstance(obj, list | tuple):
        out.append("[")
        for index, item in enumerate(obj):
            if index:
                out.append(",")
            _encode(item, out, f"{where}[{index}]")
        out.append("]")
    else:
        raise CanonicalJsonError(
            f"{where} is a {type(obj).__name__}, which canonical JSON cannot encode"
        )

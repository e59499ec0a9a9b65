"""How deeply a JSON text nests, measured without parsing it.

Why not parse and see: py-evm raises Python's recursion limit when it is imported, after which
``json.loads`` of a deeply nested document crashes the process (a segfault, not an exception).
Everything that parses a client's JSON (``api.app.BodyGuard``, uploaded receipt files) measures
first.
"""

from __future__ import annotations

import re
from itertools import accumulate, repeat
from operator import sub

__all__ = ["depth_past", "json_depth"]

_JSON_TOKENS = re.compile(rb'"(?:\\.|[^"\\])*"|[\[\]{}]')


_NOT_BRACKETS_OR_QUOTES = bytes(b for b in range(256) if b not in b'[]{}"')
_STEPS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (strings skipped).

    A text with no backslash and an even number of quotes has no escaped quote, so every other
    quote-separated piece is outside the strings: its brackets are all that count, found by a
    few C calls (a 100-row prediction has a thousand strings, and the body of every request is
    measured). Anything else is scanned token by token; both give the same answer."""
    if b"\\" not in body:
        kept = body.translate(None, _NOT_BRACKETS_OR_QUOTES)  # quotes and brackets only
        if kept.count(b'"') % 2 == 0:
            # Two quotes side by side have no bracket between them: dropping them keeps every
            # other quote an opening one (and a flat request's strings, keys and all, go at once).
            kept = kept.replace(b'""', b"")
            steps = b"".join(kept.split(b'"')[::2]).translate(_STEPS)  # [ { -> 2, ] } -> 0
            return max(0, max(accumulate(map(sub, steps, repeat(1))), default=0))
    return _scanned_depth(body)


def _scanned_depth(body: bytes) -> int:
    depth = deepest = 0
    for match in _JSON_TOKENS.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def depth_past(body: bytes, limit: int) -> int | None:
    """The body's nesting if it is deeper than ``limit``, else None.

    A text cannot nest deeper than it has opening brackets, so most bodies (a bulk request of
    thousands of flat receipts included) are cleared by counting them, without the scan."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return None
    depth = json_depth(body)
    return depth if depth > limit else None

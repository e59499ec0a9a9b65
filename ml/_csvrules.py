"""The token-level rules of :mod:`ml.datasets` (header, numbers, parsed values), in one place.

Both scan engines use them: the pure-Python reference (:mod:`ml._csvref`) directly, the native
core (``ml/_csvcore.c``) as a C transcription that the tests check against these functions. The
rules themselves are documented in the :mod:`ml.datasets` docstring.
"""

from __future__ import annotations

import math
import re
import sys

from ml.errors import DuplicateColumns, InvalidColumnName, NoHeader, TooLarge

__all__ = [
    "BOM",
    "INTEGER",
    "NUMBER",
    "check_header",
    "int_digits_limit",
    "is_integer_token",
    "is_number",
    "parse_value",
]

INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
BOM = b"\xef\xbb\xbf"


def is_integer_token(token: str) -> bool:
    """A JSON integer: ``-?(0|[1-9][0-9]*)``."""
    return INTEGER.fullmatch(token) is not None


def is_number(token: str) -> bool:
    """A JSON number that is finite as a double (integers always are)."""
    if not NUMBER.fullmatch(token):
        return False
    return INTEGER.fullmatch(token) is not None or math.isfinite(float(token))


def int_digits_limit() -> int:
    """Python's cap on the digits of an integer parsed from text (0: none), read each time
    because a process may change it."""
    return sys.get_int_max_str_digits()


def check_header(header: list[str], max_columns: int) -> list[str]:
    """The header's rules: not blank, at most ``max_columns``, named, not data, unique."""
    if not header:
        raise NoHeader("the first line is blank")
    if len(header) > max_columns:
        raise TooLarge(limit="max_columns", maximum=max_columns, actual=len(header))
    for position, name in enumerate(header, start=1):
        if name == "":
            raise InvalidColumnName(position)
    if all(NUMBER.fullmatch(name) for name in header):
        raise NoHeader("the first line looks like data (every field is a number)")
    seen: set[str] = set()
    repeated: list[str] = []
    for name in header:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    if repeated:
        raise DuplicateColumns(repeated)
    return header


def parse_value(token: str, kind: str) -> int | float | str | bool | None:
    """One field's parsed value in a column of type ``kind`` (the types' rules).

    An integer longer than Python's digit cap (``sys.get_int_max_str_digits``) is refused as
    :class:`~ml.errors.TooLarge` (limit ``int_max_str_digits``) rather than left to crash.
    """
    if token == "":
        return None
    if kind == "integer":
        try:
            return int(token)
        except ValueError:
            digits = len(token) - token.startswith("-")
            raise TooLarge(
                limit="int_max_str_digits", maximum=int_digits_limit(), actual=digits
            ) from None
    if kind == "float":
        return float(token)
    if kind == "boolean":
        return token.lower() == "true"
    return token

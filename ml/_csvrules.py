"""The token-level rules of :mod:`ml.datasets` (header, numbers, parsed values), in one place.

Both scan engines use them: the pure-Python reference (:mod:`ml._csvref`) directly, the native
core (``ml/_csvcore.c``) as a C transcription that the tests check against these functions. The
rules themselves are documented in the :mod:`ml.datasets` docstring.
"""

from __future__ import annotations

import math
import re
import sys

from ml.errors import (
    DatasetError,
    DuplicateColumns,
    InvalidColumnName,
    NoHeader,
    RaggedRow,
    SpreadsheetFile,
    TooLarge,
)

__all__ = [
    "BOM",
    "INTEGER",
    "NUMBER",
    "check_header",
    "explain",
    "header_warnings",
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


# What a file that is not a CSV starts with: a spreadsheet saved as such.
_SPREADSHEETS = (
    (b"PK\x03\x04", b"xl/", "an Excel .xlsx workbook"),
    (b"PK\x03\x04", b"opendocument.spreadsheet", "an OpenDocument .ods spreadsheet"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"", "an old Excel .xls workbook"),
)
_OTHER_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "vertical bar"}


def explain(error: DatasetError, head: bytes) -> DatasetError:
    """``error`` as a person should read it, given the file's first bytes: a spreadsheet is
    named as one (whatever parsing stumbled on first), a ragged row in a file whose header is
    split by another delimiter says so."""
    for magic, inside, kind in _SPREADSHEETS:
        if head.startswith(magic) and inside in head:
            return SpreadsheetFile(kind)
    if isinstance(error, RaggedRow) and (delimiter := _other_delimiter(head)):
        return RaggedRow(
            line=error.line,
            expected=error.expected,
            actual=error.actual,
            hint=f"the header is separated by {delimiter}s, not commas: export the file as "
            "comma-separated CSV",
        )
    return error


def _other_delimiter(head: bytes) -> str | None:
    first = head.removeprefix(BOM).split(b"\n", 1)[0].decode("utf-8", "replace")
    for char, name in _OTHER_DELIMITERS.items():
        if first.count(char) >= 1 and first.count(char) >= first.count(","):
            return name
    return None


def header_warnings(names: list[str] | tuple[str, ...]) -> list[str]:
    """What looks wrong in a header that was accepted: column names that are numbers (the first
    line may be data or metadata, as in scikit-learn's ``iris.csv``: ``150,4,setosa,…``), or one
    column whose name holds another delimiter (a semicolon- or tab-separated file read whole)."""
    warnings: list[str] = []
    numeric = [name for name in names if NUMBER.fullmatch(name)]
    if numeric:
        shown = ", ".join(repr(n) for n in numeric[:5])
        warnings.append(
            f"the header looks like data: column name(s) {shown} are numbers; if the first "
            "line is data or metadata, add a header line naming the columns"
        )
    if len(names) == 1:
        for char, name in _OTHER_DELIMITERS.items():
            if char in names[0]:
                warnings.append(
                    f"the file has one column named {names[0][:60]!r}: it looks {name}-"
                    "separated; export it as comma-separated CSV"
                )
                break
    return warnings

"""A whole MQTT message's readings checked and encoded in one call into C (msgspec), for a stream
whose columns are all numbers or booleans (:class:`MessageEncoder`).

Why: the MQTT worker's writer is what bounds the rate readings come in at (issue 27, fifteenth
session), and it spent about two fifths of its time holding the interpreter lock in parsing a
message (orjson) and then checking and encoding it reading by reading in Python
(:class:`api.streaming.rows.RowEncoder`). Here one msgspec decoder parses and checks a message
against the stream's columns, and each reading's values are written as JSON in C: a message of
ten readings took 14.2 us that way and takes 8.7 us this way (``python -m bench.streams_steps``,
both in one run). Over MQTT, end to end, the gain was within this machine's noise
(BENCHMARKS.md, fifteenth session).

The rule that keeps it safe: the answer is exactly what :class:`RowEncoder` would store for
every reading of the message, or there is none, and the message then takes the reading-by-reading
path (which gives each refused reading its reason, as before). So msgspec's checks are at least
as strict as :func:`api.streaming.rows.check_reading` (exactly the declared columns, optionally
``id``; integers within int64 and never booleans; finite floats; an id of 1 to
:data:`ID_MAX_CHARS` characters or an integer), and where msgspec writes a float differently
from Python's ``repr`` (an exponent: ``1e16`` for ``1e+16``; ``0.00001`` for ``1e-05``) the
message is left to the other path: each boolean writes one ``e`` (``true``, ``false``), so a row
with any other ``e``, or with ``0.0000``, holds such a float. The tests compare both paths on
generated readings.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from api.streaming.rows import ID_MAX_CHARS
from ml.columns import Column

__all__ = ["MessageEncoder"]

_TYPES: dict[str, Any] = {
    "integer": Annotated[int, Meta(ge=-(2**63) + 1, le=2**63 - 1)],
    "float": Annotated[float, Meta(ge=-sys.float_info.max, le=sys.float_info.max)],
    "boolean": bool,
}
_ID = Annotated[str, Meta(min_length=1, max_length=ID_MAX_CHARS)] | int | None


class MessageEncoder:
    """A stream's messages checked and encoded whole (see the module docstring)."""

    def __init__(self, columns: Sequence[Column]) -> None:
        fields = [(f"c{i}", _TYPES[c.type]) for i, c in enumerate(columns)]
        reading = msgspec.defstruct(
            "Reading",
            [*fields, ("id", _ID, None)],
            rename={f"c{i}": c.name for i, c in enumerate(columns)},
            forbid_unknown_fields=True,
            gc=False,
        )
        self._decode = msgspec.json.Decoder(reading | list[reading]).decode  # type: ignore[valid-type]
        self._encode = msgspec.json.Encoder().encode
        self._es = sum(c.type == "boolean" for c in columns)  # each writes one "e"

    @staticmethod
    def serves(columns: Sequence[Column]) -> bool:
        """Whether a stream of ``columns`` can be (no string column: a string is written with
        JSON's escapes, which need not be ``json``'s)."""
        return all(c.type in _TYPES for c in columns)

    def rows(self, payload: bytes, key: Callable[[], str]) -> list[tuple[str, str]] | None:
        """Each reading's id and values as a JSON array, as :class:`RowEncoder` writes them;
        a reading without an id is named ``<key()>:<its place>``. None when some reading would
        be refused, or written otherwise (then the reading-by-reading path decides)."""
        try:
            decoded = self._decode(payload)
        except (msgspec.DecodeError, ValueError):  # not JSON, not UTF-8, refused by a check
            return None
        readings = decoded if type(decoded) is list else [decoded]
        astuple, encode, es = msgspec.structs.astuple, self._encode, self._es
        rows = []
        seed = None
        for place, reading in enumerate(readings):
            *values, reading_id = astuple(reading)
            row = encode(values)
            if row.count(b"e") != es or b"0.0000" in row:
                return None  # a float repr writes otherwise
            if reading_id is None:
                if seed is None:
                    seed = key()
                reading_id = f"{seed}:{place}"
            elif type(reading_id) is int:
                reading_id = str(reading_id)
            rows.append((reading_id, row.decode()))
        return rows

"""Many rows into SQLite by multi-row ``INSERT`` statements, not ``executemany``.

Why: ``executemany`` steps SQLite once a row, and Python's ``sqlite3`` gives up the GIL at every
step. Where other threads wait for the GIL (a service's request threads and event loop, the
MQTT connections' threads), each hand-off costs more than the row it stepped over (issues 26
and 27: the receipt book's writes and the streams' ingest; BENCHMARKS.md, eighth session).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import chain
from typing import Any

__all__ = ["ROWS_A_STATEMENT", "multi_row_inserts"]

# Rows a statement: with up to 7 values a row, under SQLite's oldest limit of 999 values a
# statement; and the statements of every length up to it fit the sqlite3 module's statement
# cache (128 by default).
ROWS_A_STATEMENT = 128


def multi_row_inserts(
    head: str, marks: str, rows: Sequence[Sequence[Any]], shared: Sequence[Any] = ()
) -> Iterator[tuple[str, list[Any]]]:
    """``(statement, parameters)`` inserting ``rows`` by up to :data:`ROWS_A_STATEMENT` at a
    time: ``head`` (``INSERT ... VALUES``), then ``marks`` (one row's placeholders) once a row;
    ``shared`` come first in each statement's parameters (for numbered placeholders such as
    ``?1`` that every row repeats)."""
    for start in range(0, len(rows), ROWS_A_STATEMENT):
        part = rows[start : start + ROWS_A_STATEMENT]
        yield head + ",".join([marks] * len(part)), [*shared, *chain.from_iterable(part)]

"""The two scan engines behind one interface: the native core and the pure-Python reference.

:mod:`ml.scanning` runs its passes through :func:`infer` and :func:`encode`; each takes an
``engine`` name and gives the same results, the native one by driving ``ml._csvcore`` a chunk at
a time and turning what it reports into the errors of :mod:`ml.datasets`, the Python one by
calling :mod:`ml._csvref`.
"""

from __future__ import annotations

import array
import csv
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

from ml import _csvref
from ml._csvrules import BOM, check_header, explain, int_digits_limit
from ml.columns import ColumnType, Limits, Value
from ml.errors import (
    CanonicalJsonError,
    DatasetChanged,
    DatasetError,
    MalformedCsv,
    NoHeader,
    NoRows,
    RaggedRow,
    TooLarge,
    UndecodableText,
)

try:
    from ml import _csvcore  # type: ignore[attr-defined]
except ImportError:  # not built: the python engine serves
    _csvcore = None

__all__ = ["CHUNK", "NATIVE", "Engine", "Tail", "encode", "infer"]

Engine = Literal["native", "python"]
NATIVE = _csvcore is not None
"""Whether ``ml._csvcore`` is built."""
CHUNK = 1 << 20
"""Bytes read and fed at a time (the tests make it tiny to cross every boundary)."""
_TYPE_CODES: dict[str, int] = {"integer": 0, "float": 1, "string": 2, "boolean": 3}
_TYPE_NAMES: tuple[ColumnType, ...] = ("integer", "float", "string", "boolean")


def infer(
    source: BinaryIO, limits: Limits, engine: Engine, on_chunk: Callable[[Any], None]
) -> tuple[tuple[str, ...], tuple[ColumnType, ...], int]:
    """The header, column types and row count of a CSV file (the first pass); a refusal says
    what the file really is when that explains it (a spreadsheet, another delimiter)."""
    start = source.tell()
    head = source.read(_HEAD_BYTES)
    source.seek(start)
    try:
        return _infer(source, limits, engine, on_chunk)
    except DatasetError as exc:
        raise explain(exc, head) from None


_HEAD_BYTES = 64 * 1024


def _infer(
    source: BinaryIO, limits: Limits, engine: Engine, on_chunk: Callable[[Any], None]
) -> tuple[tuple[str, ...], tuple[ColumnType, ...], int]:
    if engine == "python":
        inferred = _csvref.infer(source, limits, on_chunk)
        return inferred.header, inferred.types, inferred.rows
    core = None
    for chunk, bom in _chunks(source, on_chunk, at_start=True):
        if core is None:
            core = _csvcore.Core(
                mode=_csvcore.MODE_INFER, max_rows=limits.max_rows, max_cells=limits.max_cells,
                max_field_chars=limits.max_field_chars, field_limit=csv.field_size_limit(),
                offset=bom,
            )  # fmt: skip
        core.feed(chunk)
    assert core is not None
    core.finish()
    return _inferred(core.result(), limits)


def _inferred(
    found: dict[str, Any], limits: Limits
) -> tuple[tuple[str, ...], tuple[ColumnType, ...], int]:
    """The native core's findings, turned into a result or the error ml.datasets raises."""
    if found["utf8"] is not None:
        line, offset = found["utf8"]
        raise UndecodableText(line=line, offset=offset)
    if found["nul"] is not None:
        raise MalformedCsv(line=found["nul"][0], detail="it contains a NUL byte (a binary file?)")
    error = found["error"]
    if error is not None and found["error_record"] == 0:
        raise _csv_error(error, limits)
    if found["header"] is None:
        raise NoHeader("the file holds no text")
    header = tuple(check_header(found["header"], limits.max_columns))
    if error is not None:
        raise _csv_error(error, limits)
    if found["rows"] == 0:
        raise NoRows()
    return header, tuple(_TYPE_NAMES[t] for t in found["types"]), found["rows"]


def _csv_error(error: tuple[str, dict[str, Any]], limits: Limits) -> Exception:
    kind, info = error
    if kind == "csv":
        return MalformedCsv(line=info["line"], detail=info["detail"])
    if kind == "ragged":
        return RaggedRow(line=info["line"], expected=info["expected"], actual=info["actual"])
    if kind in ("field_limit", "field_chars"):
        return TooLarge(
            limit="max_field_chars", maximum=limits.max_field_chars, actual=info.get("actual")
        )
    if kind in ("max_rows", "max_cells"):
        return TooLarge(limit=kind, maximum=getattr(limits, kind))
    raise AssertionError(f"unknown scan error {kind!r}")  # a bug in the core


@dataclass
class Tail:
    """What a second pass leaves besides its batches: start lines and locators."""

    lines: array.array = field(default_factory=lambda: array.array("Q"))
    locators: array.array = field(default_factory=lambda: array.array("Q"))


def encode(
    source: BinaryIO,
    types: tuple[ColumnType, ...],
    engine: Engine,
    tail: Tail,
    *,
    digests: bool,
    rows: bool = False,
    lines: bool = False,
    stride: int = 0,
    skip_header: bool = True,
    max_rows: int | None = None,
    start_offset: int = 0,
    on_chunk: Callable[[Any], None] | None = None,
    chunk: int | None = None,
) -> Iterator[tuple[bytes, list[tuple[Value, ...]]]]:
    """The second pass, either engine: yields ``(digests, rows)`` as rows complete."""
    if engine == "python":
        reading: BinaryIO = _Watched(source, on_chunk) if on_chunk is not None else source
        for batch in _csvref.encode(
            reading, types, skip_header=skip_header, max_rows=max_rows, digests=digests,
            rows=rows, lines=lines, stride=stride, start_offset=start_offset,
        ):  # fmt: skip
            tail.lines.extend(batch.lines)
            tail.locators.extend(batch.locators)
            yield batch.digests, batch.rows
        if on_chunk is not None:
            while chunk := source.read(CHUNK):  # the rest, so that the hash covers every byte
                on_chunk(chunk)
        return
    codes = bytes(_TYPE_CODES[t] for t in types)
    core = None
    try:
        for piece, bom in _chunks(source, on_chunk, at_start=start_offset == 0, size=chunk):
            if core is None:
                records = -1 if max_rows is None else max_rows + skip_header
                core = _csvcore.Core(
                    mode=_csvcore.MODE_ENCODE, types=codes, digests=digests, rows=rows,
                    lines=lines, stride=stride, skip_header=skip_header, max_records=records,
                    offset=start_offset + bom, int_digits=int_digits_limit(),
                )  # fmt: skip
            if not core.done:
                found = core.feed(piece)
                yield found[0] or b"", found[1] or []
            elif on_chunk is None:
                break
        if core is not None:
            found = core.finish()
            yield found[0] or b"", found[1] or []
    except _csvcore.ScanError as exc:
        raise _encode_error(*exc.args) from None
    if core is None:
        return
    result = core.result()
    if result["utf8"] is not None or result["nul"] is not None:
        raise DatasetChanged("it no longer decodes")
    tail.lines.frombytes(result["lines"])
    tail.locators.frombytes(result["locators"])


def _encode_error(kind: str, info: dict[str, Any]) -> Exception:
    if kind == "inf":
        value = "-inf" if info["negative"] else "inf"
        return CanonicalJsonError(
            f"$[{info['column']}] is {value}; canonical JSON has no NaN/Infinity"
        )
    if kind == "int_digits":
        return TooLarge(
            limit="int_max_str_digits", maximum=int_digits_limit(), actual=info["digits"]
        )
    return DatasetChanged(f"row {info['row']}: {info['detail']}")


def _chunks(
    source: BinaryIO,
    on_chunk: Callable[[Any], None] | None,
    *,
    at_start: bool,
    size: int | None = None,
) -> Iterator[tuple[memoryview, int]]:
    """The stream in chunks, each with the number of BOM bytes to skip (3 once, or 0).

    The buffer is no larger than what is left of a file: a fresh megabyte for a file of a few
    hundred bytes cost more than scanning it (an ``mmap`` and its page faults, twice per
    upload: 6% of the service's CPU on issue 21's acceptance row)."""
    buffer = bytearray(max(min(size or CHUNK, _left(source)), len(BOM)))
    view = memoryview(buffer)
    first = True
    while True:
        n = source.readinto(buffer)  # type: ignore[attr-defined]
        while first and at_start and 0 < n < len(BOM):  # a short first read: be sure of the BOM
            more = source.readinto(view[n : len(BOM)])  # type: ignore[attr-defined]
            if not more:
                break
            n += more
        if not n:
            if first:
                yield view[:0], 0
            return
        chunk = view[:n]
        if on_chunk is not None:
            on_chunk(chunk)
        skip = len(BOM) if first and at_start and chunk[: len(BOM)] == BOM else 0
        first = False
        yield chunk[skip:], skip


_SMALL_READ = 1 << 16  # a buffer this small comes from the heap (below glibc's mmap threshold)


def _left(source: BinaryIO) -> int:
    """Bytes left in a file from where it stands (at least :data:`_SMALL_READ`, in case it
    grows), or :data:`CHUNK` for a stream that is not a file."""
    try:
        left = os.fstat(source.fileno()).st_size - source.tell()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return CHUNK
    return max(left + 1, _SMALL_READ)


class _Watched(io.RawIOBase):
    """A stream whose reads are also handed to ``on_chunk`` (hashing, progress)."""

    def __init__(self, source: BinaryIO, on_chunk: Callable[[Any], None]) -> None:
        self._source, self._on_chunk = source, on_chunk

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if data:
            self._on_chunk(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._source.seek(offset, whence)

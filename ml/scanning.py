"""Streaming scans of CSV datasets: validate, type and hash every row without holding the file.

Why: a dataset file can be gigabytes, and registering it used to hold it as Python objects (about
30 times its size for numeric data). A scan reads the file twice, a chunk at a time, and keeps
only a few megabytes, whatever the file's size:

1. **Types** (``infer``): every byte is validated (strict UTF-8, no NUL), the CSV is parsed, the
   header and the limits are checked, each column's type is inferred, and the bytes are hashed
   (the content hash).
2. **Rows** (``encode``): each row is parsed with its column types and written as its canonical
   bytes, whose SHA-256 is the row digest. Digests go to the caller in order (32 bytes a row),
   with the byte offset of every ``locator_stride``-th row (so that one row can later be read
   back without reading the rows before it). The bytes are hashed again: if the file changed
   between the passes, :class:`~ml.errors.DatasetChanged`.

The rules are those of :mod:`ml.datasets`, and so are the errors, in the same order of precedence.
Two engines implement them: ``native`` (``ml/_csvcore.c``, the default when built) and ``python``
(:mod:`ml._csvref`, the csv module, the specification the native engine is tested against, and
the fallback, about 30 times slower). Both give byte-identical digests, values and errors.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import struct
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from ml import _scan_engines
from ml._scan_engines import Engine, Tail
from ml.columns import Column, ColumnType, Limits, Value, compute_schema_hash
from ml.errors import DatasetChanged, EmptyFile, TooLarge
from ml.hashing import to_hex

__all__ = [
    "ENGINES",
    "Engine",
    "Progress",
    "Scan",
    "ScanProgress",
    "Schema",
    "Table",
    "default_engine",
    "iter_rows",
    "read_rows",
    "read_schema",
    "read_table",
    "scan_bytes",
    "scan_file",
]

ENGINES: tuple[Engine, ...] = ("native", "python")
_MAX_LOCATORS = 1 << 19
_ROW_CHUNK = 1 << 16  # reading a few rows back: 64 KiB at a time, not a whole chunk
log = logging.getLogger("provenance.ml")


@dataclass(frozen=True)
class ScanProgress:
    """Where a scan is: its pass, the bytes read in that pass, the file's size, rows seen."""

    phase: Literal["types", "rows"]
    bytes_done: int
    bytes_total: int
    rows: int


Progress = Callable[[ScanProgress], None]


@dataclass(frozen=True)
class Schema:
    """A validated file's columns, row count, content hash and size (the first pass only)."""

    columns: tuple[Column, ...]
    row_count: int
    content_hash: bytes
    size: int

    @property
    def schema_hash(self) -> bytes:
        """SHA-256 of the canonical schema document (see :mod:`ml.datasets`)."""
        return compute_schema_hash(self.columns)

    @property
    def column_names(self) -> tuple[str, ...]:
        """Column names in header order."""
        return tuple(column.name for column in self.columns)


@dataclass(frozen=True)
class Scan(Schema):
    """A whole scan: the schema plus where every ``locator_stride``-th row starts in the file.

    ``locators`` holds little-endian ``u64`` byte offsets, the ``j``-th that of data row
    ``j * locator_stride`` (bytes, not ints: a gigabyte's scan has hundreds of thousands);
    with :func:`read_rows` one row is read back from the nearest locator before it.
    """

    locators: bytes = field(repr=False, default=b"")
    locator_stride: int = 0
    engine: Engine = "native"
    path: Path | None = None

    def locator(self, index: int) -> tuple[int, int]:
        """``(offset, rows to skip)`` to read data row ``index`` with :func:`read_rows`."""
        if not 0 <= index < self.row_count:
            raise IndexError(f"row {index} is out of range 0..{self.row_count - 1}")
        slot = index // self.locator_stride
        (offset,) = struct.unpack_from("<Q", self.locators, 8 * slot)
        return offset, index - slot * self.locator_stride

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description, as :meth:`ml.datasets.Dataset.summary` gives."""
        return {
            "content_hash": to_hex(self.content_hash),
            "schema_hash": to_hex(self.schema_hash),
            "row_count": self.row_count,
            "size": self.size,
            "columns": [column.to_json() for column in self.columns],
        }


@dataclass(frozen=True)
class Table:
    """A file's parsed rows in memory, what :func:`ml.datasets.load_dataset` is built from."""

    schema: Schema
    rows: tuple[tuple[Value, ...], ...]
    lines: tuple[int, ...]


def default_engine() -> Engine:
    """``native`` when ``ml._csvcore`` is built, else ``python``."""
    return "native" if _scan_engines.NATIVE else "python"


def _engine(engine: Engine | None) -> Engine:
    chosen = engine or default_engine()
    if chosen not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if chosen == "native" and not _scan_engines.NATIVE:
        raise RuntimeError("the native scan engine (ml._csvcore) is not built")
    if engine is None and chosen == "python":
        log.warning("ml._csvcore is not built: scanning with the pure-Python engine (slow)")
    return chosen


# --------------------------------------------------------------------------- public entry points


def scan_file(
    path: str | os.PathLike[str],
    limits: Limits = Limits(),
    *,
    digests: Callable[[bytes], None] | None = None,
    progress: Progress | None = None,
    engine: Engine | None = None,
) -> Scan:
    """Scan the CSV file at ``path`` (both passes); ``digests`` receives the row digests.

    Raises every :class:`~ml.errors.DatasetError` that :func:`ml.datasets.load_dataset` raises
    for the same file, and :class:`~ml.errors.CanonicalJsonError` for a row that has no canonical
    form (a float column holding a number too large for a double).
    """
    file_path = Path(path)
    with open(file_path, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        return _scan(source, size, limits, digests, progress, _engine(engine), file_path)


def scan_bytes(
    data: bytes,
    limits: Limits = Limits(),
    *,
    digests: Callable[[bytes], None] | None = None,
    engine: Engine | None = None,
) -> Scan:
    """:func:`scan_file` for a file held in memory."""
    return _scan(io.BytesIO(data), len(data), limits, digests, None, _engine(engine), None)


def read_schema(
    path: str | os.PathLike[str], limits: Limits = Limits(), *, engine: Engine | None = None
) -> Schema:
    """The first pass only: the file is valid, with these columns and rows."""
    with open(path, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        _check_size(size, limits)
        hasher = hashlib.sha256()
        header, types, rows = _scan_engines.infer(source, limits, _engine(engine), hasher.update)
    return Schema(_columns(header, types), rows, hasher.digest(), size)


def read_table(
    source: str | os.PathLike[str] | bytes,
    limits: Limits = Limits(),
    *,
    engine: Engine | None = None,
) -> Table:
    """Every row's parsed values and start line, in memory (for training and small files)."""
    if isinstance(source, bytes):
        stream: BinaryIO = io.BytesIO(source)
        size = len(source)
    else:
        stream = open(source, "rb")  # noqa: SIM115 - closed below
        size = os.fstat(stream.fileno()).st_size
    with stream:
        _check_size(size, limits)
        chosen = _engine(engine)
        hasher = hashlib.sha256()
        header, types, count = _scan_engines.infer(stream, limits, chosen, hasher.update)
        stream.seek(0)
        again = hashlib.sha256()
        tail = Tail()
        rows: list[tuple[Value, ...]] = []
        for _, batch in _scan_engines.encode(
            stream, types, chosen, tail, digests=False, rows=True, lines=True, on_chunk=again.update
        ):
            rows.extend(batch)
    _same(hasher, again, count, len(rows))
    schema = Schema(_columns(header, types), count, hasher.digest(), size)
    return Table(schema, tuple(rows), tuple(tail.lines))


def read_rows(
    path: str | os.PathLike[str],
    columns: Sequence[Column],
    *,
    offset: int,
    count: int,
    skip: int = 0,
    engine: Engine | None = None,
) -> list[tuple[tuple[Value, ...], bytes]]:
    """``count`` data rows (values and digest) after skipping ``skip`` rows at byte ``offset``.

    ``offset`` must be where a data row starts (a :attr:`Scan.locators` entry). Nothing is
    checked against the file's hash here: the caller checks each digest (a row proof does).
    """
    types = tuple(column.type for column in columns)
    out: list[tuple[tuple[Value, ...], bytes]] = []
    with open(path, "rb") as source:
        source.seek(offset)
        for digests, batch in _scan_engines.encode(
            source, types, _engine(engine), Tail(), digests=True, rows=True,
            skip_header=False, max_rows=skip + count, start_offset=offset, chunk=_ROW_CHUNK,
        ):  # fmt: skip
            out += [(values, digests[32 * i : 32 * i + 32]) for i, values in enumerate(batch)]
    return out[skip : skip + count]


def iter_rows(
    path: str | os.PathLike[str], columns: Sequence[Column], *, engine: Engine | None = None
) -> Iterator[tuple[Value, ...]]:
    """Every data row's parsed values, streamed (for derivations that run over a file)."""
    types = tuple(column.type for column in columns)
    with open(path, "rb") as source:
        for _, batch in _scan_engines.encode(
            source, types, _engine(engine), Tail(), digests=False, rows=True
        ):
            yield from batch


# --------------------------------------------------------------------------- the two passes


def _check_size(size: int, limits: Limits) -> None:
    if size > limits.max_bytes:
        raise TooLarge(limit="max_bytes", maximum=limits.max_bytes, actual=size)
    if size == 0:
        raise EmptyFile()


def _stride(rows: int) -> int:
    """Rows between two locators: 64, doubled until at most 2**19 locators (4 MiB) are kept."""
    stride = 64
    while rows > stride * _MAX_LOCATORS:
        stride *= 2
    return stride


def _columns(header: Sequence[str], types: Sequence[ColumnType]) -> tuple[Column, ...]:
    return tuple(Column(name, kind) for name, kind in zip(header, types, strict=True))


def _same(first: Any, second: Any, rows: int, again: int) -> None:
    if first.digest() != second.digest():
        raise DatasetChanged("its SHA-256 differs between the two reads")
    if rows != again:
        raise DatasetChanged(f"{rows} rows on the first read, {again} on the second")


def _scan(
    source: BinaryIO,
    size: int,
    limits: Limits,
    digests: Callable[[bytes], None] | None,
    progress: Progress | None,
    engine: Engine,
    path: Path | None,
) -> Scan:
    _check_size(size, limits)
    hasher = hashlib.sha256()
    done = [0, 0]

    def seen(phase: Literal["types", "rows"], which: Any) -> Callable[[Any], None]:
        def update(chunk: Any) -> None:
            which.update(chunk)
            done[0] += len(chunk)
            if progress is not None:
                progress(ScanProgress(phase, done[0], size, done[1]))

        return update

    header, types, count = _scan_engines.infer(source, limits, engine, seen("types", hasher))
    stride = _stride(count)
    source.seek(0)
    again = hashlib.sha256()
    done[0] = 0
    tail = Tail()
    for row_digests, _ in _scan_engines.encode(
        source, types, engine, tail, digests=True, stride=stride, on_chunk=seen("rows", again)
    ):
        done[1] += len(row_digests) // 32
        if digests is not None and row_digests:
            digests(row_digests)
    _same(hasher, again, count, done[1])
    if sys.byteorder != "little":
        tail.locators.byteswap()
    return Scan(
        _columns(header, types),
        count,
        hasher.digest(),
        size,
        locators=tail.locators.tobytes(),
        locator_stride=stride,
        engine=engine,
        path=path,
    )

"""A dataset's row Merkle tree on disk: built streaming, read in O(log n) per row proof.

Why it is one module of over 400 lines: the builder and the reader share one on-disk layout
(header, sorted leaves, tree top, locators) and must change together, byte for byte; the tree's
shape, which both compute, is in :mod:`ledger.storage._rowshape`, and the sort they rely on in
:mod:`ledger.storage._rowsort`.

Why: the rows root (:mod:`ledger.formats.rows`) is an OpenZeppelin ``StandardMerkleTree`` whose
leaves are sorted by hash, so its shape depends on every row at once. Building it in memory takes 2n
nodes of Python objects, and answering a row proof meant rebuilding it. This module builds the
same tree (the same root and the same proofs, byte for byte, so old records verify as they are)
with flat memory, and keeps on disk just enough to answer a proof with a few reads.

**Building** (:class:`RowIndexBuilder`), given the row digests in row order:

1. each row's leaf hash ``keccak256(keccak256(uint256(i) || digest_i))`` is computed in bulk
   (:mod:`ledger.formats._treehash`, in a worker thread once a second chunk comes; a file of one
   chunk is hashed in ``finish``) and appended to a scratch file, 32 bytes a row;
2. the leaf hashes are sorted (in memory when they fit in ``memory`` bytes, else bucketed on
   disk by their leading bytes and each bucket sorted in memory): the tree's leaf order;
3. the tree's array layout (root first, node ``j``'s children at ``2j+1`` and ``2j+2``, leaves
   at the end in reverse order) puts the ``L = 2n - 2^D`` smallest leaves one level below the
   others (``D = ceil(log2 n)``). So the level ``D-1`` is, in reverse array order, the sequence
   ``S`` = the leaves ``L..n-1`` then the parents of the leaf pairs ``(0,1), (2,3) .. (L-2,L-1)``,
   and above it the tree is perfect. ``S`` is streamed in groups of ``2^h`` elements, each group
   reduced to its root, and the levels above the groups (at most 2^17 nodes) are kept: the
   *top* of the tree, in its array layout.

**The file** (version 1, little-endian): a 128-byte header (magic ``PLROWIX1``, version, ``h``,
row count, locator stride and count, extra length, root, a 32-byte ``content`` id the caller
chooses - the dataset's content hash), then the sorted leaf hashes (32 bytes a row), the top,
the caller's locators (``u64`` each) and the caller's ``extra`` bytes. Locators and extra are not
interpreted here: :mod:`ml.scanning` puts there where every stride-th row starts in the CSV file.

**A proof** (:meth:`RowIndex.proof`) for row ``i`` with digest ``d``: the leaf hash of ``[i, d]``
is looked up by binary search among the sorted leaves (``log2 n`` reads of 32 bytes; absent means
the row is not the registered row), then its siblings come from its group (at most ``2^(h+1)``
leaves read at once and hashed) and from the top. The proof is checked against the root before
it is returned. A group has at most 2^(h+1) leaves with ``h`` chosen so that the top stays under
8 MiB: 512 leaves for 30 million rows.
"""

from __future__ import annotations

import bisect
import os
import struct
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ledger.errors import LedgerError
from ledger.formats import _treehash
from ledger.formats.merkle import process_proof
from ledger.formats.rows import ROW_LEAF_ENCODING
from ledger.storage import _rowsort
from ledger.storage._rowshape import TreeShape as _Shape
from ledger.storage.artifacts import InsufficientStorage, _no_space

__all__ = [
    "FORMAT_VERSION",
    "RowIndex",
    "RowIndexBuilder",
    "RowIndexCorrupt",
    "RowIndexError",
    "RowIndexInfo",
    "RowNotInIndex",
]

FORMAT_VERSION = 1
_MAGIC = b"PLROWIX1"
_HEADER = struct.Struct("<8sIIQQQQ32s32s")  # magic, version, h, rows, stride, locators, extra,
_HEADER_SIZE = 128  #                           root, content; zero-padded to 128 bytes
_rowsort.CHUNK_HASHES = 1 << 15  # 1 MiB of 32-byte hashes per read or write
assert ROW_LEAF_ENCODING == ("uint256", "bytes32")  # what ledger.formats._treehash.leaves hashes


class RowIndexError(LedgerError):
    """Root of the row index's errors."""


class RowIndexCorrupt(RowIndexError):
    """The index file is malformed, truncated, or its proof does not lead to its root."""

    hint = "delete the row index file; it is rebuilt from the dataset file"


class RowNotInIndex(RowIndexError, LookupError):
    """No leaf of the index is ``[i, digest]``: the row read is not the row registered."""


@dataclass(frozen=True)
class RowIndexInfo:
    """A built index: its rows root (what a dataset record stores as ``rowsRoot``), its rows."""

    root: bytes
    row_count: int
    path: Path


def _space(exc: OSError, what: str) -> OSError:
    if _no_space(exc):
        return InsufficientStorage(f"no space left on the disk while writing {what}")
    return exc


def _pread(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise RowIndexCorrupt(
            f"the row index is truncated: {len(data)} of {size} bytes at {offset}"
        )
    return data


class RowIndexBuilder:
    """Build a row index file at ``path`` from row digests given in row order.

    ``add`` the digests (any number per call, 32 bytes each), then ``finish``. Leaf hashes are
    kept in memory up to ``memory`` bytes, past that in 256 scratch files beside ``path`` (one
    per leading byte, so each is sorted on its own); they are removed either way, and on an
    error or :meth:`abort` nothing is left. The peak memory is about three times ``memory``,
    plus 8 MiB of write buffers once spilled, and twice its deepest level (4 MiB) for the top.
    """

    def __init__(self, path: str | os.PathLike[str], *, memory: int = 16 << 20) -> None:
        self.path = Path(path)
        self._memory = max(memory, 1 << 16)
        self._rows = 0
        self._held = bytearray()
        self._buckets: list[int] | None = None  # file descriptors, once spilled
        self._buffers: list[bytearray] = []  # one per bucket, made when the leaves spill
        # Leaves are hashed in a worker thread while the caller reads on, started only once a
        # second chunk comes: a file of one chunk (most uploads) is hashed in ``finish``,
        # without a thread's start and join (7% of a small upload's wall time under load).
        self._pool: ThreadPoolExecutor | None = None
        self._first: bytes | None = None  # the first chunk (rows from 0), not yet hashed
        self._pending: list[Future[None]] = []
        self._closed = False

    def __enter__(self) -> RowIndexBuilder:
        return self

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if kind is not None:
            self.abort()
        else:
            self._close()

    # -- feeding -----------------------------------------------------------------------------

    def add(self, digests: bytes | memoryview) -> None:
        """Append the digests of the next rows (a whole number of 32-byte digests)."""
        if len(digests) % 32:
            raise ValueError("row digests are 32 bytes each")
        if not digests:
            return
        first = self._rows
        self._rows += len(digests) // 32
        if first == 0:
            self._first = bytes(digests)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="row-leaves")
        if self._first is not None:
            self._pending.append(self._pool.submit(self._leaves, self._first, 0))
            self._first = None
        while len(self._pending) >= 2:  # at most two chunks in flight
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(self._leaves, bytes(digests), first))

    def _leaves(self, digests: bytes, first: int) -> None:
        """In the worker thread: hash the leaves, hold them or put them in their buckets."""
        hashes = _treehash.leaves(digests, first)
        if self._buckets is None and len(self._held) + len(hashes) <= self._memory:
            self._held += hashes
            return
        try:
            if self._buckets is None:
                self._buckets = [self._bucket_file(b) for b in range(256)]
                self._buffers = [bytearray() for _ in range(256)]
                self._spill(bytes(self._held))
                self._held = bytearray()
            self._spill(hashes)
        except OSError as exc:
            raise _space(exc, "row leaves") from None

    def _bucket_file(self, byte: int) -> int:
        name = self.path.with_name(f"{self.path.name}.leaves-{byte:02x}")
        return os.open(name, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)

    def _spill(self, hashes: bytes) -> None:
        rows = np.frombuffer(hashes, dtype=np.uint8).reshape(-1, 32)
        firsts = rows[:, 0]
        order = np.argsort(firsts, kind="stable")
        ranked = rows[order]
        bounds = np.searchsorted(firsts[order], np.arange(257))
        assert self._buckets is not None
        for byte in np.flatnonzero(np.diff(bounds)):
            buffer = self._buffers[byte]
            buffer += ranked[bounds[byte] : bounds[byte + 1]].tobytes()
            if len(buffer) >= 1 << 15:
                self._flush(int(byte))

    def _flush(self, byte: int) -> None:
        assert self._buckets is not None
        buffer = self._buffers[byte]
        with memoryview(buffer) as whole:
            view = whole
            while view:
                view = view[os.write(self._buckets[byte], view) :]
            del view
        buffer.clear()

    # -- finishing ---------------------------------------------------------------------------

    def finish(
        self,
        *,
        content: bytes = bytes(32),
        locators: bytes | Sequence[int] = (),
        locator_stride: int = 0,
        extra: bytes = b"",
    ) -> RowIndexInfo:
        """Sort, build the tree, write the file (synced); returns its root and row count.

        ``locators`` are the caller's ``u64`` values (a sequence, or bytes of little-endian
        ``u64``), kept with ``locator_stride`` for :meth:`RowIndex.locator`.
        """
        if isinstance(locators, bytes | bytearray | memoryview):
            packed = bytes(locators)
        else:
            packed = np.asarray(locators, dtype="<u8").tobytes()
        try:
            for future in self._pending:
                future.result()
            self._pending.clear()
            if self._first is not None:  # the file's only chunk
                self._leaves(self._first, 0)
                self._first = None
            shape = _Shape.of(self._rows)
            if len(content) != 32:
                raise ValueError("content is a 32-byte id")
            out = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                self._sort_into(out)
                tail = _HEADER_SIZE + 32 * shape.n
                root = self._top(out, shape, tail)
                tail += 32 * shape.top_nodes
                _rowsort.write_all(out, packed, tail)
                _rowsort.write_all(out, extra, tail + len(packed))
                header = _HEADER.pack(
                    _MAGIC, FORMAT_VERSION, shape.h, shape.n, locator_stride, len(packed) // 8,
                    len(extra), root, content,
                )  # fmt: skip
                _rowsort.write_all(out, header.ljust(_HEADER_SIZE, b"\0"), 0)
                os.fsync(out)
            finally:
                os.close(out)
        except OSError as exc:
            self.abort()
            raise _space(exc, "the row index") from None
        except BaseException:
            self.abort()
            raise
        self._close()
        return RowIndexInfo(root, shape.n, self.path)

    def abort(self) -> None:
        """Stop and remove everything written (the index file and the scratch files)."""
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._close()
        self.path.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._first = None
        self._held = bytearray()
        if self._buckets is not None:
            for byte, fd in enumerate(self._buckets):
                os.close(fd)
                self.path.with_name(f"{self.path.name}.leaves-{byte:02x}").unlink(missing_ok=True)
            self._buckets = None

    def _sort_into(self, out: int) -> None:
        """The leaf hashes, sorted, into ``out`` after the header: bucket by bucket."""
        if self._buckets is None:
            _rowsort.write_all(out, _rowsort.sort_hashes(self._held), _HEADER_SIZE)
            self._held = bytearray()
            return
        at = _HEADER_SIZE
        for byte, fd in enumerate(self._buckets):
            self._flush(byte)
            count = os.fstat(fd).st_size // 32
            if 32 * count <= self._memory:
                _rowsort.write_all(out, _rowsort.sort_hashes(_pread(fd, 32 * count, 0)), at)
            else:  # an oversized bucket (adversarial leaves): sort it on disk by the next byte
                _rowsort.bucket_sort(fd, 0, out, at, count, 1, self._memory)
            at += 32 * count

    def _top(self, out: int, shape: _Shape, at: int) -> bytes:
        """Stream S in groups, write the top of the tree at ``at`` (array order), return the root.

        The group roots are the top's deepest level; each level is written reversed (the array
        keeps a level right to left) and only the level being reduced is held.
        """
        group = 1 << shape.h
        roots = bytearray()
        pending = bytearray()

        def take(elements: bytes) -> None:
            pending.extend(elements)
            whole = (len(pending) // (32 * group)) * 32 * group
            if whole:
                level = bytes(pending[:whole])
                del pending[:whole]
                for _ in range(shape.h):
                    level = _treehash.parents(level)
                roots.extend(level)

        base = _HEADER_SIZE
        for start in range(shape.deep, shape.n, _rowsort.CHUNK_HASHES):  # the single leaves of S
            count = min(_rowsort.CHUNK_HASHES, shape.n - start)
            take(_pread(out, 32 * count, base + 32 * start))
        for start in range(
            0, shape.deep, _rowsort.CHUNK_HASHES
        ):  # then the parents of the deep pairs
            count = min(_rowsort.CHUNK_HASHES, shape.deep - start)
            take(_treehash.parents(_pread(out, 32 * count, base + 32 * start)))
        assert not pending, "S is a whole number of groups"
        level = bytes(roots)
        roots.clear()
        depth = shape.top_depth
        while True:
            _rowsort.write_all(out, _reversed_hashes(level), at + 32 * ((1 << depth) - 1))
            if depth == 0:
                return level
            level = _treehash.parents(level)
            depth -= 1


def _reversed_hashes(data: bytes) -> bytes:
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, 32)[::-1].tobytes()


class _Leaves(Sequence[bytes]):
    """The sorted leaf hashes of an index file, read on demand (for bisect)."""

    def __init__(self, fd: int, n: int) -> None:
        self._fd, self._n = fd, n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, k: Any) -> Any:
        return _pread(self._fd, 32, _HEADER_SIZE + 32 * k)


class RowIndex:
    """An open row index file; :meth:`proof` answers a row proof with a few reads."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDONLY)
        try:
            self._load()
        except BaseException:
            os.close(self._fd)
            raise

    def _load(self) -> None:
        raw = os.pread(self._fd, _HEADER_SIZE, 0)
        if len(raw) != _HEADER_SIZE or raw[:8] != _MAGIC:
            raise RowIndexCorrupt(f"{self.path} is not a row index file")
        fields = _HEADER.unpack(raw[: _HEADER.size])
        _, version, h, n, stride, count, extra, root, content = fields
        if version != FORMAT_VERSION:
            raise RowIndexCorrupt(f"{self.path}: row index version {version}, not 1")
        self._shape = _Shape.of(n)
        if self._shape.h != h:
            raise RowIndexCorrupt(f"{self.path}: group height {h}, expected {self._shape.h}")
        self.root: bytes = root
        self.content: bytes = content
        self.row_count: int = n
        self.locator_stride: int = stride
        self._top_at = _HEADER_SIZE + 32 * n
        self._locators_at = self._top_at + 32 * self._shape.top_nodes
        self._extra_at = self._locators_at + 8 * count
        self._locator_count = count
        self._extra_size = extra
        if os.fstat(self._fd).st_size != self._extra_at + extra:
            raise RowIndexCorrupt(f"{self.path} has the wrong size for {n} rows")
        if _pread(self._fd, 32, self._top_at) != root:
            raise RowIndexCorrupt(f"{self.path}: the top of its tree is not its root")

    def __enter__(self) -> RowIndex:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __repr__(self) -> str:
        return f"RowIndex(rows={self.row_count}, root=0x{self.root.hex()}, path={self.path})"

    @property
    def extra(self) -> bytes:
        """The caller's bytes stored with the index."""
        return _pread(self._fd, self._extra_size, self._extra_at)

    def locator(self, index: int) -> tuple[int, int]:
        """``(stored locator, rows to skip)`` for row ``index``: the nearest locator before it."""
        self._check(index)
        if self.locator_stride <= 0 or self._locator_count == 0:
            raise RowIndexCorrupt(f"{self.path} stores no locators")
        slot = min(index // self.locator_stride, self._locator_count - 1)
        (value,) = struct.unpack("<Q", _pread(self._fd, 8, self._locators_at + 8 * slot))
        return value, index - slot * self.locator_stride

    def leaf_hash(self, index: int, digest: bytes) -> bytes:
        """The tree's leaf hash of the row leaf ``[index, digest]``."""
        if len(digest) != 32:
            raise ValueError("a row digest is 32 bytes")
        return _treehash.leaves(digest, index)

    def proof(self, index: int, digest: bytes) -> list[bytes]:
        """The sibling hashes from row ``index``'s leaf to the root (``StandardMerkleTree.proof``).

        Raises:
            RowNotInIndex: ``[index, digest]`` is not a leaf of this tree.
            RowIndexCorrupt: the file's nodes do not lead to its root.
        """
        self._check(index)
        leaf = self.leaf_hash(index, digest)
        leaves = _Leaves(self._fd, self.row_count)
        k = bisect.bisect_left(leaves, leaf)
        if k == self.row_count or leaves[k] != leaf:
            raise RowNotInIndex(f"row {index} with digest 0x{digest.hex()} is not in the tree")
        shape = self._shape
        proof: list[bytes] = []
        if shape.n > 1:
            if k < shape.deep:
                proof.append(leaves[k ^ 1])
                s = shape.singles + k // 2
            else:
                s = k - shape.deep
            group = s >> shape.h
            level = self._group(group)
            u = s - (group << shape.h)
            for _ in range(shape.h):
                proof.append(level[32 * (u ^ 1) : 32 * (u ^ 1) + 32])
                level = _treehash.parents(level)
                u >>= 1
            position = (1 << (shape.top_depth + 1)) - 2 - group
            while position > 0:
                sibling = position + 1 if position % 2 else position - 1
                proof.append(_pread(self._fd, 32, self._top_at + 32 * sibling))
                position = (position - 1) // 2
        if process_proof(leaf, proof) != self.root:
            raise RowIndexCorrupt(f"{self.path}: the proof of row {index} misses the root")
        return proof

    def _group(self, group: int) -> bytes:
        """The 2^h elements of S in ``group``, read from the sorted leaves."""
        shape = self._shape
        lo, hi = group << shape.h, (group + 1) << shape.h
        parts = []
        a, b = lo, min(hi, shape.singles)
        if a < b:
            parts.append(_pread(self._fd, 32 * (b - a), _HEADER_SIZE + 32 * (shape.deep + a)))
        a, b = max(lo, shape.singles), hi
        if a < b:
            first = 2 * (a - shape.singles)
            pairs = _pread(self._fd, 64 * (b - a), _HEADER_SIZE + 32 * first)
            parts.append(_treehash.parents(pairs))
        return b"".join(parts)

    def _check(self, index: int) -> None:
        if type(index) is not int or not 0 <= index < self.row_count:
            raise RowNotInIndex(f"row {index} is out of range 0..{self.row_count - 1}")

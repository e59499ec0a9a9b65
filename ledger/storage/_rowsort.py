"""Sorting 32-byte hashes bytewise in bounded memory: in memory when they fit, else on disk.

Why its own module: the row index (:mod:`ledger.storage.row_index`) must sort one leaf hash per row
of a dataset, tens of millions of them, in the StandardMerkleTree's order, without holding them all.
The hashes are uniform (keccak256 outputs) except where an adversary grinds rows to share
leading bytes, so the disk path buckets by one byte at a time and recurses only on buckets that
are still too large: memory stays bounded whatever the input.
"""

from __future__ import annotations

import errno
import os

import numpy as np

__all__ = ["CHUNK_HASHES", "bucket_sort", "read_all", "sort_hashes", "write_all"]

CHUNK_HASHES = 1 << 15
"""Hashes per read or write of a scratch file (1 MiB)."""


_FEW = 64
"""At most this many hashes are sorted as bytes objects (numpy's turn comes at about 100)."""


def read_all(fd: int, size: int, offset: int) -> bytes:
    """Exactly ``size`` bytes at ``offset`` (a short read of a scratch file is an I/O error)."""
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise OSError(errno.EIO, f"short read: {len(data)} of {size} bytes at {offset}")
    return data


def write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def sort_hashes(data: bytes | bytearray | memoryview) -> memoryview:
    """32-byte hashes sorted bytewise (numpy on the leading 8 bytes, ties settled in full).

    Returns a view of the sorted bytes (no further copy), to be written out as it is.
    """
    count = len(data) // 32
    if count <= _FEW:  # numpy's set-up costs more than sorting a few bytes objects
        held = bytes(data)
        return memoryview(b"".join(sorted([held[i : i + 32] for i in range(0, 32 * count, 32)])))
    rows = np.frombuffer(data, dtype=np.uint8).reshape(count, 32)
    keys = np.frombuffer(data, dtype=">u8").reshape(count, 4)[:, 0].astype(np.uint64)
    order = np.argsort(keys, kind="stable")
    del keys
    ranked = rows[order]
    del order
    firsts = ranked[:, :8].copy().view(">u8").ravel()
    tied = firsts[1:][firsts[1:] == firsts[:-1]]
    for key in np.unique(tied):  # equal leading 8 bytes (rare): order each such run in full
        lo = int(np.searchsorted(firsts, key, "left"))
        hi = int(np.searchsorted(firsts, key, "right"))
        run = sorted(ranked[k].tobytes() for k in range(lo, hi))
        ranked[lo:hi] = np.frombuffer(b"".join(run), dtype=np.uint8).reshape(-1, 32)
    return memoryview(ranked).cast("B")


def bucket_sort(
    src: int, src_at: int, dst: int, dst_at: int, count: int, depth: int, memory: int,
    histogram: np.ndarray | None = None,
) -> None:  # fmt: skip
    """Sort ``count`` hashes at ``src_at`` in ``src`` into ``dst_at`` in ``dst``: scatter them by
    their byte ``depth`` into 256 regions, then sort each region in memory, or recursively (with
    ``src``'s region as scratch) when it is still larger than ``memory``."""
    if histogram is None:
        histogram = np.zeros(256, dtype=np.int64)
        for start in range(0, count, CHUNK_HASHES):
            n = min(CHUNK_HASHES, count - start)
            chunk = np.frombuffer(read_all(src, 32 * n, src_at + 32 * start), dtype=np.uint8)
            histogram += np.bincount(chunk[depth::32], minlength=256)
    starts = np.concatenate(([0], np.cumsum(histogram)[:-1])).astype(np.int64)
    cursor = starts.copy()
    for start in range(0, count, CHUNK_HASHES):
        n = min(CHUNK_HASHES, count - start)
        chunk = np.frombuffer(read_all(src, 32 * n, src_at + 32 * start), dtype=np.uint8)
        rows = chunk.reshape(n, 32)
        keys = rows[:, depth]
        order = np.argsort(keys, kind="stable")
        ranked = rows[order]
        bounds = np.searchsorted(keys[order], np.arange(257))
        for byte in np.flatnonzero(np.diff(bounds)):
            lo, hi = bounds[byte], bounds[byte + 1]
            write_all(dst, ranked[lo:hi].tobytes(), dst_at + 32 * int(cursor[byte]))
            cursor[byte] += hi - lo
    for byte in np.flatnonzero(histogram):
        at, size = int(starts[byte]), int(histogram[byte])
        if 32 * size <= memory or depth == 31:
            region = read_all(dst, 32 * size, dst_at + 32 * at)
            write_all(dst, sort_hashes(region), dst_at + 32 * at)
        else:  # an oversized bucket: sort it into src's (now free) region, then copy it back
            bucket_sort(dst, dst_at + 32 * at, src, src_at + 32 * at, size, depth + 1, memory)
            for start in range(0, size, CHUNK_HASHES):
                n = min(CHUNK_HASHES, size - start)
                data = read_all(src, 32 * n, src_at + 32 * (at + start))
                write_all(dst, data, dst_at + 32 * (at + start))

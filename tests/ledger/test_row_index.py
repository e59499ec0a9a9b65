"""ledger.storage.row_index: the row tree built on disk has the in-memory tree's root and proofs.

The in-memory StandardMerkleTree (ledger.formats.rows.row_tree, itself checked against the npm
library in test_rows.py) is the oracle for every size where it fits; the npm library checks proofs
of a large index directly. The sort's spill to disk, the group height and the fallback hashing are
forced small here, so every path of the builder runs on small data.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from eth_hash.auto import keccak

from ledger.formats import _treehash
from ledger.formats._keccak import FALLBACK
from ledger.formats.merkle import InvalidTreeError, verify_proof
from ledger.formats.rows import ROW_LEAF_ENCODING, row_tree
from ledger.storage import _rowshape, _rowsort
from ledger.storage._rowsort import bucket_sort, sort_hashes
from ledger.storage.artifacts import InsufficientStorage
from ledger.storage.row_index import RowIndex, RowIndexBuilder, RowIndexCorrupt, RowNotInIndex
from ml.hashing import to_hex
from tests.ledger._merkle_js import js_json, run_js

VERIFY_JS = Path(__file__).resolve().parent / "js" / "verify_proofs.mjs"


def _digests(n: int, salt: str = "") -> list[bytes]:
    return [hashlib.sha256(f"{salt}[{i},{(i * 7) % 13}]".encode()).digest() for i in range(n)]


def _build(path: Path, digests: list[bytes], *, chunk: int = 997, **kwargs: Any) -> Any:
    with RowIndexBuilder(path, **kwargs) as builder:
        for start in range(0, len(digests), chunk):
            builder.add(b"".join(digests[start : start + chunk]))
        return builder.finish(content=b"\x11" * 32, locators=[5, 6, 7], locator_stride=64)


def _check_all(tmp_path: Path, n: int, **kwargs: Any) -> None:
    digests = _digests(n)
    tree = row_tree(digests)
    path = tmp_path / f"rows-{n}"
    info = _build(path, digests, **kwargs)
    assert (info.root, info.row_count) == (tree.root, n)
    with RowIndex(path) as index:
        assert (index.root, index.row_count, index.content) == (tree.root, n, b"\x11" * 32)
        for i in range(n):
            assert index.proof(i, digests[i]) == tree.proof(i), i
            assert index.leaf_hash(i, digests[i]) == tree.leaf_hash_at(i)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [p.name for p in tmp_path.iterdir() if p.name.startswith("rows-")]
    ), "scratch files are removed"


@pytest.mark.parametrize("n", [*range(1, 34), 63, 64, 65, 127, 128, 129, 1000, 1025])
def test_root_and_every_proof_match_the_in_memory_tree(tmp_path: Path, n: int) -> None:
    _check_all(tmp_path, n)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 16, 17, 31, 33, 100, 1000, 3000])
def test_groups_and_the_spill_to_disk_change_nothing(
    tmp_path: Path, n: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A top of depth 2 (groups of up to 2^(D-3) elements) and 2,048 leaves in memory."""
    monkeypatch.setattr(_rowshape, "TOP_DEPTH", 2)
    _check_all(tmp_path, n, memory=1 << 16, chunk=313)


def test_the_fallback_hashing_gives_the_same_bytes() -> None:
    digests = b"".join(_digests(41))
    assert _treehash.leaves(digests, 7) == _treehash.leaves(digests, 7, native=False)
    pairs = os.urandom(64 * 19) + bytes(64) + b"\x01" * 32 + b"\x00" * 32
    assert _treehash.parents(pairs) == _treehash.parents(pairs, native=False)
    assert _treehash.leaves(digests[:32], 2**200) == FALLBACK.leaf(
        (2**200).to_bytes(32, "big") + digests[:32]
    )


@pytest.mark.parametrize("size", [1, 32, 135, 136, 137, 192, 271, 272, 273])
def test_encoded_leaves_hash_alike_natively_and_in_the_fallback(size: int) -> None:
    """Every message length around keccak's 136-byte block, a receipt's 192 among them."""
    messages = np.random.default_rng(size).integers(0, 256, 5 * size, dtype=np.uint8).tobytes()
    native = _treehash.encoded_leaves(messages, size)
    assert native == _treehash.encoded_leaves(messages, size, native=False)
    assert native[32:64] == keccak(keccak(messages[size : 2 * size]))


def test_encoded_leaves_refuse_a_ragged_buffer() -> None:
    for native in (True, False):
        with pytest.raises(ValueError, match="size-byte"):
            _treehash.encoded_leaves(bytes(100), 192, native=native)
        with pytest.raises(ValueError, match="size-byte"):
            _treehash.encoded_leaves(b"", 0, native=native)


def test_the_native_hashing_is_built() -> None:
    assert _treehash.NATIVE, "build ledger.formats._rowtree: pip install -e . (see pyproject)"


def test_sorting_settles_ties_in_the_leading_bytes() -> None:
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, size=(300, 32), dtype=np.uint8)
    base[:200, :8] = 7  # 200 hashes share their first 8 bytes
    base[200:260, :12] = 3
    data = base.tobytes()
    expected = b"".join(sorted(data[32 * k : 32 * k + 32] for k in range(300)))
    assert bytes(sort_hashes(data)) == expected


@pytest.mark.parametrize("count", [0, 1, 2, 63, 64, 65, 200])
def test_sorting_agrees_with_bytes_order_on_both_sides_of_the_few_threshold(count: int) -> None:
    """A few hashes are sorted as bytes objects, more by numpy: the same order either way."""
    rng = np.random.default_rng(count)
    rows = rng.integers(0, 256, size=(count, 32), dtype=np.uint8)
    rows[: count // 2, :8] = 1  # ties in the leading bytes on both paths
    data = rows.tobytes()
    expected = b"".join(sorted(data[32 * k : 32 * k + 32] for k in range(count)))
    assert bytes(sort_hashes(data)) == expected
    assert bytes(sort_hashes(bytearray(data))) == expected


def test_an_oversized_bucket_is_sorted_on_disk_by_the_next_bytes(tmp_path: Path) -> None:
    """Leaves an adversary ground to share leading bytes still sort, in bounded memory."""
    rng = np.random.default_rng(9)
    rows = rng.integers(0, 256, size=(5000, 32), dtype=np.uint8)
    rows[:4000, 0] = 0xAB
    rows[:3000, 1] = 0xCD
    rows[:2500, 2] = 0x01
    data = rows.tobytes()
    src = os.open(tmp_path / "src", os.O_RDWR | os.O_CREAT)
    dst = os.open(tmp_path / "dst", os.O_RDWR | os.O_CREAT)
    try:
        os.pwrite(src, data, 100)
        bucket_sort(src, 100, dst, 7, 5000, 0, 32 * 64)
        out = os.pread(dst, len(data), 7)
    finally:
        os.close(src)
        os.close(dst)
    assert out == b"".join(sorted(data[32 * k : 32 * k + 32] for k in range(5000)))


def test_a_row_that_is_not_in_the_tree_is_refused(tmp_path: Path) -> None:
    digests = _digests(100)
    _build(tmp_path / "rows", digests)
    with RowIndex(tmp_path / "rows") as index:
        with pytest.raises(RowNotInIndex):
            index.proof(3, digests[4])  # another row's digest
        with pytest.raises(RowNotInIndex):
            index.proof(100, digests[0])
        assert index.locator(0) == (5, 0)
        assert index.locator(70) == (6, 6)
        assert index.locator(99) == (6, 35)


def test_a_damaged_index_is_caught(tmp_path: Path) -> None:
    digests = _digests(300)
    path = tmp_path / "rows"
    _build(path, digests)
    data = bytearray(path.read_bytes())
    top = 128 + 32 * 300
    damaged = bytearray(data)
    damaged[top + 32 * 3] ^= 1  # a node of the top
    path.write_bytes(bytes(damaged))
    with RowIndex(path) as index:
        failures = 0
        for i in range(300):
            try:
                index.proof(i, digests[i])
            except RowIndexCorrupt:
                failures += 1
        assert failures > 0  # every proof through that node misses the root
    path.write_bytes(bytes(data[:-1]))
    with pytest.raises(RowIndexCorrupt, match="wrong size"):
        RowIndex(path)
    path.write_bytes(b"not an index" * 20)
    with pytest.raises(RowIndexCorrupt, match="not a row index"):
        RowIndex(path)


def test_no_rows_is_not_a_tree(tmp_path: Path) -> None:
    with pytest.raises(InvalidTreeError), RowIndexBuilder(tmp_path / "rows") as builder:
        builder.finish()
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digests = _digests(5000)
    real = _rowsort.write_all

    def full(fd: int, data: Any, offset: int) -> None:
        if offset > 128:
            raise OSError(28, "No space left on device")
        real(fd, data, offset)

    monkeypatch.setattr(_rowsort, "write_all", full)
    with pytest.raises(InsufficientStorage):
        _build(tmp_path / "rows", digests, memory=1 << 16)
    assert list(tmp_path.iterdir()) == []


def test_proofs_of_a_large_index_verify_with_the_npm_library(tmp_path: Path) -> None:
    """First, middle and last rows of 200,000, by @openzeppelin/merkle-tree's own verify."""
    n = 200_000
    digests = b"".join(_digests(n, "large"))
    path = tmp_path / "rows"
    with RowIndexBuilder(path, memory=1 << 20) as builder:  # spills to disk
        for start in range(0, n, 65_536):
            builder.add(digests[32 * start : 32 * (start + 65_536)])
        info = builder.finish()
    jobs, ours = [], []
    with RowIndex(path) as index:
        for i in (0, 1, n // 2, n - 2, n - 1):
            digest = digests[32 * i : 32 * i + 32]
            proof = index.proof(i, digest)
            leaf = index.leaf_hash(i, digest)
            assert verify_proof(info.root, leaf, proof)
            ours.append(leaf)
            jobs.append(
                {
                    "root": to_hex(info.root),
                    "leafEncoding": list(ROW_LEAF_ENCODING),
                    "value": js_json([i, digest]),
                    "proof": [to_hex(p) for p in proof],
                }
            )
    jobs.append({**jobs[0], "value": js_json([1, digests[:32]])})  # a forged row
    results = run_js(VERIFY_JS, jobs)
    assert [r.get("ok") for r in results] == [True] * 5 + [False]
    assert [r["leafHash"] for r in results[:5]] == [to_hex(leaf) for leaf in ours]

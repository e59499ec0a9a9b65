"""ledger.formats.rows: the row leaf ``[i, digest_i]`` and the ``rowsRoot`` recorded with every
dataset.

The pinned roots were computed with the code this module replaced (``api.service.row_tree`` as of
commit 4219f3b: ``StandardMerkleTree.of([[i, d] for i, d in enumerate(digests)],
["uint256", "bytes32"])``): a dataset registered before must get the same root today. The npm
library ``@openzeppelin/merkle-tree`` must agree on roots and proofs.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

import pytest
from eth_hash.auto import keccak

from ledger.formats.merkle import InvalidTreeError, LeafEncodingError, verify_proof
from ledger.formats.rows import ROW_LEAF_ENCODING, row_tree, rows_root
from ml.datasets import parse_dataset
from ml.hashing import from_hex, to_hex
from tests.ledger._merkle_js import MERKLE_TREE_JS, js_json, run_js

FIVE = [hashlib.sha256(f"row {i}".encode()).digest() for i in range(5)]
CSV = b"x,y,label\n1,2.5,a\n3,-0.5,b\n1,2.5,a\n,7,c\n"


@pytest.mark.parametrize(
    ("digests", "root"),
    [
        (FIVE, "0x30855954dc4e5dd273259abd0841b05ecc694a49f8406b086ed4d33ae42709a8"),
        (FIVE[:1], "0x9b3d92d87a978ace0a3d2121642ad6248ed86571f5b52b5d5b74cbb58e920531"),
        ([FIVE[0]] * 3, "0x40d95f02bf9f843cdb9176796fad5159bdefbfd4bdf18618ed85fd9f4b729040"),
    ],
    ids=["five", "one", "three-equal"],
)
def test_rows_root_is_pinned(digests: list[bytes], root: str) -> None:
    assert rows_root(digests) == from_hex(root)
    assert row_tree(digests).root == from_hex(root)


def test_the_root_of_a_parsed_csv_is_pinned() -> None:
    """From file bytes to rowsRoot: ml.datasets' row digests, then this module's leaves."""
    digests = parse_dataset(CSV).row_digests()
    assert digests[0] == digests[2]  # two equal rows...
    expected = "0x9cb051b33084de083aaf27a6ec5e6d26aa55d5b643f7ad09d1839da229249f44"
    assert to_hex(rows_root(digests)) == expected


def test_a_row_leaf_is_the_index_and_the_digest() -> None:
    tree = row_tree(FIVE)
    assert tree.leaf_encoding == ROW_LEAF_ENCODING == ("uint256", "bytes32")
    assert tree.values == tuple((i, d) for i, d in enumerate(FIVE))
    for i, digest in enumerate(FIVE):
        # keccak256(keccak256(abi.encode(uint256 i, bytes32 digest))), from scratch.
        assert tree.leaf_hash_at(i) == keccak(keccak(i.to_bytes(32, "big") + digest))
        assert verify_proof(rows_root(FIVE), tree.leaf_hash_at(i), tree.proof(i))


def test_equal_rows_are_distinct_leaves_with_their_own_proofs() -> None:
    tree = row_tree([FIVE[0]] * 3)
    leaves = [tree.leaf_hash_at(i) for i in range(3)]
    assert len(set(leaves)) == 3
    assert not verify_proof(tree.root, leaves[0], tree.proof(1))


def test_order_matters() -> None:
    assert rows_root(FIVE) != rows_root(FIVE[::-1])


@pytest.mark.parametrize(
    ("digests", "error", "message"),
    [
        ([], InvalidTreeError, "at least one leaf"),
        ([FIVE[0][:31]], LeafEncodingError, "needs exactly 32 bytes, got 31"),
        (FIVE[0], LeafEncodingError, "not one value"),
    ],
)
def test_bad_digests_are_refused(digests: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        rows_root(digests)


SIZES = [1, 2, 3, 4, 7, 100, 1025]


def _digests(n: int) -> list[bytes]:
    return [hashlib.sha256(f"[{i},{(i * 7) % 13}]".encode()).digest() for i in range(n)]


@cache
def _npm() -> dict[int, dict[str, Any]]:
    """The npm library's trees over the same leaves, one node run for every size."""
    jobs = [
        {
            "op": "of",
            "values": js_json([[i, d] for i, d in enumerate(_digests(n))]),
            "leafEncoding": list(ROW_LEAF_ENCODING),
        }
        for n in SIZES
    ]
    return dict(zip(SIZES, run_js(MERKLE_TREE_JS, jobs), strict=True))


@pytest.mark.parametrize("n", SIZES)
def test_roots_and_proofs_match_the_npm_library(n: int) -> None:
    js = _npm()[n]
    assert "error" not in js, js
    tree = row_tree(_digests(n))
    assert to_hex(tree.root) == js["root"]
    assert [to_hex(tree.leaf_hash_at(i)) for i in range(n)] == js["leafHashes"]
    assert [[to_hex(p) for p in tree.proof(i)] for i in range(n)] == js["proofs"]

"""The row leaf: how a dataset's rows become the ``rowsRoot`` recorded with it on chain.

A dataset record carries its content hash (SHA-256 of the file's bytes), which proves the whole
file, and a row Merkle root, which lets the service prove one row without handing over the rest.
The format is fixed here, once, because an auditor recomputes it with other tools:

* each row has a **row digest**, the 32-byte SHA-256 that ``ml.datasets.Dataset.row_digests()``
  gives (over the row's canonical JSON; see :mod:`ml.datasets`);
* row ``i`` (0-based, in file order) is the leaf ``[i, digest_i]`` typed
  :data:`ROW_LEAF_ENCODING` ``("uint256", "bytes32")``. The index is in the leaf so that two equal
  rows are still two leaves and a proof says *which* row it is;
* the tree is OpenZeppelin's ``StandardMerkleTree`` (:mod:`ledger.formats.merkle`) with sorted
  leaves, so ``StandardMerkleTree.of(rows, ["uint256", "bytes32"])`` in
  ``@openzeppelin/merkle-tree`` gives the same root and proofs, and ``MerkleProof.verify`` in
  Solidity accepts them.

This module takes digests rather than a dataset because ``ledger`` knows nothing of scikit-learn
or of :mod:`ml.datasets`; the caller hashes the rows, this module fixes the leaves. It builds the
tree in memory, for small sets of rows and as the reference; a dataset of any size gets the same
tree, root and proofs from :mod:`ledger.storage.row_index`, built streaming and kept on disk.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.formats.merkle import LeafEncodingError, StandardMerkleTree

__all__ = ["ROW_LEAF_ENCODING", "row_tree", "rows_root"]

ROW_LEAF_ENCODING = ("uint256", "bytes32")
"""The ABI types of a row leaf: the row's 0-based index, then its 32-byte digest."""


def row_tree(digests: Sequence[bytes]) -> StandardMerkleTree:
    """The row tree over ``digests`` (row ``i`` is the leaf ``[i, digests[i]]``).

    Keep the tree to answer proofs (:meth:`StandardMerkleTree.proof` takes the row index).

    Raises:
        LeafEncodingError: a digest is not 32 bytes.
        InvalidTreeError: there are no rows.
    """
    if isinstance(digests, bytes | bytearray | str):
        raise LeafEncodingError("row digests are a sequence of 32-byte digests, not one value")
    return StandardMerkleTree.of(
        [(i, digest) for i, digest in enumerate(digests)], ROW_LEAF_ENCODING
    )


def rows_root(digests: Sequence[bytes]) -> bytes:
    """The 32-byte row Merkle root over ``digests``, what a dataset record stores as ``rowsRoot``.

    Raises the same errors as :func:`row_tree`.
    """
    return row_tree(digests).root

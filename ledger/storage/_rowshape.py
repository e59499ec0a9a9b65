"""The shape of a row tree for ``n`` leaves, as :mod:`ledger.storage.row_index` lays it out on
disk (its module docstring draws it): which leaves sit one level deeper, and how the level above
them is cut into groups under a bounded top."""

from __future__ import annotations

from dataclasses import dataclass

from ledger.formats.merkle import InvalidTreeError

__all__ = ["TOP_DEPTH", "TreeShape"]

TOP_DEPTH = 17  # at most 2^17 group roots: the top is at most 2^18 - 1 nodes (8 MiB)


@dataclass(frozen=True)
class TreeShape:
    """The tree's shape for ``n`` leaves: see the module docstring."""

    n: int
    deep: int  # L: leaves one level below the others
    s_len: int  # M = 2^(D-1): elements of the level S
    s_depth: int  # D - 1
    h: int  # group height: 2^h elements of S per group
    top_depth: int  # depth of the group roots in the tree

    @classmethod
    def of(cls, n: int) -> TreeShape:
        if n < 1:
            raise InvalidTreeError("a Merkle tree needs at least one leaf")
        if n == 1:
            return cls(1, 0, 1, 0, 0, 0)
        d = (n - 1).bit_length()
        s_depth = d - 1
        h = max(0, s_depth - TOP_DEPTH)
        return cls(n, 2 * n - (1 << d), 1 << s_depth, s_depth, h, s_depth - h)

    @property
    def singles(self) -> int:
        """Elements of S that are leaves (the leaves ``L..n-1``); the rest are leaf pairs."""
        return self.n - self.deep

    @property
    def top_nodes(self) -> int:
        return (1 << (self.top_depth + 1)) - 1

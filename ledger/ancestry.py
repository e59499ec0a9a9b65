"""The one walk up a lineage in search of revoked ancestors.

Three places ask "is anything this was made from revoked?": the service before it serves a
model (through the index), verification (through the chain itself, trusting nothing else) and
the lineage graph's taint (through the index, for every node it shows). They differ only in
where they look a record up, so the walk takes the lookup as an argument: ``lookup(hash)``
returns anything with ``revoked`` and ``parents`` (an :class:`~ledger.index.base.IndexedDataset`
does, so ``index.dataset`` is a lookup as it stands; :class:`AncestorFacts` is the plain form),
or None for a hash it does not know.

The walk is iterative (a long chain of cleaning steps must not hit Python's recursion limit),
asks about each hash once, goes on past a revoked record (so every revoked ancestor is found,
not only the nearest), and visits in a fixed order (depth first, the last start first), so
"the first revoked ancestor" is the same answer every time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "Ancestor",
    "AncestorFacts",
    "AncestorLookup",
    "Ancestry",
    "first_revoked_ancestor",
    "walk_ancestry",
]


class Ancestor(Protocol):
    """What the walk needs to know of a record: whether it is revoked, and what it was made
    from (a dataset's parents; for the lineage graph, any record's inputs)."""

    @property
    def revoked(self) -> bool: ...

    @property
    def parents(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class AncestorFacts:
    """An :class:`Ancestor` for lookups that do not hold a record object (the chain's)."""

    revoked: bool
    parents: tuple[str, ...]


AncestorLookup = Callable[[str], Ancestor | None]
"""hash → what the walk needs to know of it, or None if the hash is unknown."""


@dataclass(frozen=True)
class Ancestry:
    """What a walk found. The starts count as their own ancestors.

    ``visited`` holds every hash reached, known or not, in walk order; ``revoked`` and
    ``unknown`` are the revoked and the unknown ones among them, in the same order; ``tainted``
    is the set of visited hashes that are revoked or have a revoked ancestor.
    """

    visited: tuple[str, ...]
    revoked: tuple[str, ...]
    unknown: tuple[str, ...]
    tainted: frozenset[str]

    @property
    def first_revoked(self) -> str | None:
        """The first revoked hash in walk order, or None if nothing is revoked."""
        return self.revoked[0] if self.revoked else None


def walk_ancestry(starts: Iterable[str], lookup: AncestorLookup) -> Ancestry:
    """Walk from ``starts`` through everything they were made from, asking ``lookup`` about
    each hash once. Exceptions from ``lookup`` propagate (an unreachable chain, say)."""
    # 1. Depth first over the lookup's answers, remembering the edges seen.
    visited: list[str] = []
    revoked: list[str] = []
    unknown: list[str] = []
    made_from: dict[str, Sequence[str]] = {}
    seen: set[str] = set()
    frontier = list(starts)
    while frontier:
        current = frontier.pop()
        if current in seen:
            continue
        seen.add(current)
        visited.append(current)
        found = lookup(current)
        if found is None:
            unknown.append(current)
            continue
        if found.revoked:
            revoked.append(current)
        made_from[current] = found.parents
        frontier.extend(found.parents)
    # 2. Taint flows from each revoked hash to everything visited that was made from it.
    users: dict[str, list[str]] = {}
    for child, parents in made_from.items():
        for parent in parents:
            users.setdefault(parent, []).append(child)
    tainted = set(revoked)
    spreading = list(revoked)
    while spreading:
        for user in users.get(spreading.pop(), ()):
            if user not in tainted:
                tainted.add(user)
                spreading.append(user)
    return Ancestry(tuple(visited), tuple(revoked), tuple(unknown), frozenset(tainted))


def first_revoked_ancestor(starts: Iterable[str], lookup: AncestorLookup) -> str | None:
    """The first revoked hash among ``starts`` and their ancestors, or None: what the service
    asks before serving a model, ``first_revoked_ancestor(model.datasets, index.dataset)``.
    Unknown hashes are passed over (the walk's ``unknown`` says which, for who cares)."""
    return walk_ancestry(starts, lookup).first_revoked

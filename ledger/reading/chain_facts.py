"""What verification reads from the chain, read once and kept for as long as it cannot change.

Everything a receipt's verification reads is shared by every receipt of its batch: the batch's
anchoring, its model's registration and training datasets, their parents, revocations, the
signer's role. :class:`ChainFacts` reads each of them once and keeps two kinds of answers:

* **Facts** (events: a registration, an anchoring, a revocation; a role at an anchoring point)
  never change once their block is final (``confirmations`` blocks deep; the embedded chain has
  no forks, so at once). Each is keyed by the hash of the block that holds it, and kept with
  the record state seen when it was read: a later state that disagrees (another registrant,
  another registration time, a revocation gone) means the chain was reorganised under the
  cache, and the fact is read again. A reorg cannot poison the cache.
* **State** (is a record registered, revoked, when; does a key hold ``REGISTRAR_ROLE`` now)
  changes with every block, so it is read at one head block and kept only for that block's
  hash: a :class:`Snapshot`. A verification takes one snapshot (one cheap ``eth_getBlockByNumber``)
  and reads every record state it needs from it in one ``getRecords`` call, none at all if
  that head was read already.

Events are found, in this order, at the block a piece of evidence claims (an anchored receipt's
``block_number``, a bundle's records): the claim is checked against the event found there, and
a wrong claim is reported (:attr:`Located.hint_ok` False), never trusted; then at the block the
service's own index gives (``hints``, trusted: a miss only costs a scan); and only then by a
scan from the deployment block. A record whose state says it does not exist is never scanned
for.

A role at an anchoring point is the role's state just before the anchoring block plus that
block's role changes before the anchoring log, read once per (key, block hash): its cost does
not grow with the chain. A node that cannot serve an old block's state (a pruned node) is
answered from the key's full role history instead, scanned once and extended incrementally
(seeded by ``role_history``, the service's index). A key's role now is read from that history
too where there is one (a few new blocks of logs per head instead of an ``eth_call``), else
from the snapshot's state.

One module (just over 400 lines) because the cache's safety argument is one argument: the keys
(block hashes), the snapshot and the reorg check that invalidates a fact are read together.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ledger.reading._jsonrpc import BlockHead, NodeError
from ledger.reading.chain_reader import ContractNotFound, Found, LedgerReader, RoleChange
from ledger.records import ChainRecord, LedgerEvent, RecordKind, hash_hex

__all__ = [
    "BlockHints",
    "ChainFacts",
    "EventName",
    "Located",
    "RoleHistory",
    "Snapshot",
]

EventName = Literal["DatasetRegistered", "ModelRegistered", "PredictionsAnchored", "RecordRevoked"]
BlockHints = Callable[[str, str], int | None]
"""(event name, record hash) → the block that holds the event, if known (the service's index)."""
RoleHistory = Callable[[str, str], tuple[list[tuple[int, int, bool]], int | None]]
"""(account, generation's address) → the account's REGISTRAR_ROLE changes in that generation
known so far, and the last block they cover (None: nothing known)."""

_MAX_FACTS = 100_000
_KINDS = {
    "DatasetRegistered": RecordKind.DATASET,
    "ModelRegistered": RecordKind.MODEL,
    "PredictionsAnchored": RecordKind.BATCH,
}


@dataclass(frozen=True)
class Located:
    """An event looked up for a verification, and what became of the evidence's claim.

    ``hint_ok`` is None when no block was claimed, True when the claimed block holds the event,
    False when it does not (the event, if any, was then found elsewhere)."""

    event: Any
    claimed: int | None = None
    hint_ok: bool | None = None
    block_hash: str | None = None
    contract: str | None = None
    """The generation that logged the event (None: the reader's newest)."""


class Snapshot:
    """Record states and roles at one head block, each read at most once."""

    def __init__(self, reader: LedgerReader, head: BlockHead) -> None:
        self.head = head
        self._reader = reader
        self._records: dict[str, ChainRecord | None] = {}
        self._roles: dict[str, bool] = {}
        self._lock = threading.Lock()

    def prefetch(self, hashes: Iterable[str], accounts: Iterable[str] = ()) -> None:
        """Read, in one round trip, every state asked for that this snapshot lacks."""
        with self._lock:
            missing = sorted({h for h in hashes if h not in self._records})
            wanted = sorted({a for a in accounts if a not in self._roles})
        if not missing and not wanted:
            return
        records, roles = self._reader.records_and_roles(missing, wanted, self.head.number)
        with self._lock:
            self._records.update(zip(missing, records, strict=True))
            self._roles.update(zip(wanted, roles, strict=True))

    def record(self, record_hash: str) -> ChainRecord | None:
        """The stored record (None: nothing registered under the hash) at this head."""
        if record_hash not in self._records:
            self.prefetch([record_hash])
        return self._records[record_hash]

    def holds_role(self, account: str) -> bool:
        """Whether ``account`` holds ``REGISTRAR_ROLE`` at this head."""
        if account not in self._roles:
            self.prefetch((), [account])
        return self._roles[account]


@dataclass
class _Fact:
    found: Found
    seen: tuple[str, int] | None  # (registrant, registered_at) of the record when it was read


class ChainFacts:
    """The chain as verification sees it: a reader, and the facts and state read so far.

    One instance serves many verifications (the service keeps one for its lifetime; a bulk
    audit one per run) and is safe across threads.
    """

    def __init__(
        self,
        reader: LedgerReader,
        *,
        hints: BlockHints | None = None,
        role_history: RoleHistory | None = None,
        confirmations: int = 0,
        follow_roles: bool = False,
        max_facts: int = _MAX_FACTS,
    ) -> None:
        self.reader = reader
        self.hints = hints
        self.role_history = role_history
        self.confirmations = confirmations
        self.follow_roles = follow_roles
        self._max_facts = max_facts
        self._facts: OrderedDict[tuple[str, str], _Fact] = OrderedDict()
        self._roles_at: OrderedDict[tuple[str, str, int], bool] = OrderedDict()
        self._histories: dict[tuple[str, str], tuple[int, list[RoleChange]]] = {}
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_client(cls, client: Any, *, follow_roles: bool = False) -> ChainFacts:
        """Facts read through a :class:`~ledger.chain.client.LedgerClient`'s backend and contract,
        with its block hints and role history (the service's index) when it has them."""
        backend = client.backend
        reader = LedgerReader(
            backend.transport(),
            client.address,
            deploy_block=client.deploy_block,
            sender=client.account.address,
            generations=[g.address for g in reversed(client.generations)],
        )
        return cls(
            reader,
            hints=client.block_hints,
            role_history=client.role_history,
            confirmations=backend.confirmations,
            follow_roles=follow_roles,
        )

    # -- state ---------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The state at the current head: the same snapshot while the head stays the same."""
        head = self.reader.head()
        with self._lock:
            current = self._snapshot
            if current is not None and current.head.hash == head.hash:
                return current
            self._snapshot = Snapshot(self.reader, head)
            return self._snapshot

    def forget_state(self) -> None:
        """Drop the state read at the current head, so the next verification reads it again
        (as it does whenever a block is added); facts stay. For measuring the cold path."""
        with self._lock:
            self._snapshot = None

    # -- events --------------------------------------------------------------------------------

    def event(
        self, name: EventName, key: str, snapshot: Snapshot, *, claimed: int | None = None
    ) -> Located:
        """The ``name`` event of record ``key``, if the record's state says there is one."""
        key = hash_hex(key)
        state = snapshot.record(key)
        if name == "RecordRevoked":
            exists = state is not None and state.revoked
        else:
            exists = state is not None and state.kind is _KINDS[name]
        fact = self._cached(name, key, state) if exists else None
        hint_ok: bool | None = None
        if fact is None and exists:
            found, hint_ok = self._locate(name, key, snapshot.head, claimed)
            if found is not None:
                fact = self._remember(name, key, found, state, snapshot.head)
        event = fact.found.event if fact is not None else None
        if claimed is not None and hint_ok is None:
            hint_ok = event is not None and event.block_number == claimed
        return Located(
            event,
            claimed,
            hint_ok,
            fact.found.block_hash if fact else None,
            (fact.found.contract or None) if fact else None,
        )

    def _cached(self, name: str, key: str, state: ChainRecord | None) -> _Fact | None:
        with self._lock:
            fact = self._facts.get((name, key))
            if fact is None:
                return None
            seen = None if state is None else (state.registrant, state.registered_at)
            if fact.seen is not None and seen != fact.seen:
                del self._facts[(name, key)]  # the chain changed under the cache: read again
                return None
            return fact

    def _remember(
        self, name: str, key: str, found: Found, state: ChainRecord | None, head: BlockHead
    ) -> _Fact:
        seen = None
        if state is not None and name != "RecordRevoked":
            seen = (state.registrant, state.registered_at)
        fact = _Fact(found, seen)
        if found.event.block_number <= head.number - self.confirmations:  # final: keep it
            with self._lock:
                self._facts[(name, key)] = fact
                while len(self._facts) > self._max_facts:
                    self._facts.popitem(last=False)
        return fact

    def _locate(
        self, name: str, key: str, head: BlockHead, claimed: int | None
    ) -> tuple[Found | None, bool | None]:
        """1. the claimed block; 2. the index's block; 3. a scan. Returns the claim's fate."""
        reader = self.reader
        hint_ok: bool | None = None
        tried: set[int] = set()
        if claimed is not None:
            found = self._at(name, key, claimed, head)
            tried.add(claimed)
            if found is not None:
                return found, True
            hint_ok = False
        trusted = self.hints(name, key) if self.hints is not None else None
        if trusted is not None and trusted not in tried:
            found = self._at(name, key, trusted, head)
            if found is not None:
                return found, hint_ok
        matches = reader.find(name, key, reader.deploy_block, head.number)
        if name == "RecordRevoked" and len(matches) > 1:
            return self._counted_revocation(key, matches, head), hint_ok
        return (matches[0] if matches else None), hint_ok

    def _counted_revocation(self, key: str, matches: list[Found], head: BlockHead) -> Found:
        """Of several revocations of one record (``matches``, in chain order), the one the
        newest generation counts: an older generation knows nothing of its successors and may
        revoke a record again, or revoke its own later copy of a hash a newer generation
        registered first. The first revocation stands, among those logged by the generation
        that holds the registration the newest one reads (the first in chain order) or by a
        newer one, as the index decides (:mod:`ledger.index._superseded`)."""
        newest_first = [a.lower() for a in self.reader.generations()]
        age = {address: len(newest_first) - i for i, address in enumerate(newest_first)}
        kind = matches[0].event.kind
        registration = next(name for name, k in _KINDS.items() if k is kind)
        registered = self.reader.find(registration, key, self.reader.deploy_block, head.number)
        holder = age.get(registered[0].contract.lower(), 0) if registered else 0
        for found in matches:
            if age.get(found.contract.lower(), 0) >= holder:
                return found
        return matches[0]

    def _at(self, name: str, key: str, block: int, head: BlockHead) -> Found | None:
        if not self.reader.deploy_block <= block <= head.number:
            return None
        matches = self.reader.find(name, key, block, block)
        return matches[0] if matches else None

    # -- roles ---------------------------------------------------------------------------------

    def role_at(self, account: str, located: Located, head: BlockHead) -> bool:
        """Whether ``account`` held ``REGISTRAR_ROLE`` where ``located``'s event was logged:
        changes in the same block count when they were logged before it."""
        event: LedgerEvent = located.event
        key = (account, located.block_hash or "", event.log_index)
        with self._lock:
            if key in self._roles_at:
                return self._roles_at[key]
        block, position = event.block_number, (event.block_number, event.log_index)
        # an older generation's event: its roles are that generation's
        older = located.contract not in (None, self.reader.address)
        where: dict[str, Any] = {"contract": located.contract} if older else {}
        held: bool | None = None
        if block - 1 >= self.reader.deploy_block:
            try:
                held = self.reader.has_role(account, block - 1, **where)
            except ContractNotFound:
                held = False  # before the contract existed (an unknown deployment block)
            except NodeError:
                held = None  # the node keeps no state that old: use the role's history
        if held is None and block - 1 < self.reader.deploy_block:
            held = False
        if held is not None:
            for change in self.reader.role_changes(account, block, block, **where):
                if (change.block_number, change.log_index) < position:
                    held = change.granted
        else:
            held = False
            for change in self.history(account, head, up_to=block, **where):
                if (change.block_number, change.log_index) > position:
                    break
                held = change.granted
        if located.block_hash and block <= head.number - self.confirmations:
            with self._lock:
                self._roles_at[key] = held  # keyed by block hash: a reorg makes a new key
                while len(self._roles_at) > self._max_facts:
                    self._roles_at.popitem(last=False)
        return held

    def follows(self, account: str) -> bool:
        """Whether ``account``'s current role is read from its role history (kept up to date a
        few new blocks at a time) rather than from the state at each head: so once there is a
        history to extend (the index's, or one read before), or when ``follow_roles`` asks for
        it (a long-lived verifier, for which one scan pays off)."""
        known = (account, self.reader.address) in self._histories
        return self.follow_roles or self.role_history is not None or known

    def holds_role(self, account: str, snapshot: Snapshot) -> bool:
        """Whether ``account`` holds ``REGISTRAR_ROLE`` at the snapshot's head (or later)."""
        if not self.follows(account):
            return snapshot.holds_role(account)
        history = self.history(account, snapshot.head)
        return bool(history) and history[-1].granted

    def history(
        self,
        account: str,
        head: BlockHead,
        *,
        up_to: int | None = None,
        contract: str | None = None,
    ) -> list[RoleChange]:
        """``account``'s role changes in the newest generation (or in the generation
        ``contract``: each has its own roles) up to block ``up_to`` (default: the head), or a
        little further: scanned once, then only for blocks not seen yet, and seeded by the
        index's copy when there is one. Only final blocks' changes are kept for next time."""
        up_to = head.number if up_to is None else up_to
        final = head.number - self.confirmations
        generation = contract or self.reader.address
        key = (account, generation)
        with self._lock:
            covered, known = self._histories.get(key, (self.reader.deploy_block - 1, []))
        if key not in self._histories and self.role_history is not None:
            changes, indexed_to = self.role_history(account, generation)
            if indexed_to is not None:
                covered = min(indexed_to, final)
                known = [RoleChange(b, i, g, "") for b, i, g in changes if b <= covered]
        if up_to > covered:
            found = self.reader.role_changes(account, covered + 1, up_to, contract=generation)
            known = sorted(known + found)
        keep = min(max(covered, up_to), final)
        with self._lock:
            if keep > self._histories.get(key, (-1, []))[0]:
                self._histories[key] = (keep, [c for c in known if c.block_number <= keep])
        return list(known)

    # -- lineage -------------------------------------------------------------------------------

    def cached_lineage(self, starts: Sequence[str]) -> set[str]:
        """Every hash reachable from ``starts`` through cached registrations (a model's
        datasets, a dataset's parents), so a warm verification reads all their states at once."""
        seen: set[str] = set()
        frontier = list(starts)
        with self._lock:
            while frontier:
                current = frontier.pop()
                if current in seen:
                    continue
                seen.add(current)
                for name, field_name in (("ModelRegistered", "datasets"),
                                         ("DatasetRegistered", "parents")):  # fmt: skip
                    fact = self._facts.get((name, current))
                    if fact is not None:
                        frontier.extend(getattr(fact.found.event, field_name))
        return seen

"""The checks about records, shared by receipts, models and dataset files: registered, not
revoked, registered after what it was made from, and everything it was made from sound.

Each function reads through :class:`~ledger.reading.chain_facts.ChainFacts` at one
:class:`~ledger.reading.chain_facts.Snapshot`, so the states of a whole lineage come from one block
and, once its registrations are cached, from one ``getRecords`` call. The walk itself is
:func:`ledger.ancestry.walk_ancestry`, the one walk the service and the lineage graph use too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.ancestry import AncestorFacts, walk_ancestry
from ledger.errors import LedgerError
from ledger.reading.chain_facts import ChainFacts, EventName, Snapshot
from ledger.records import ZERO_HASH, ChainRecord, ModelRegistered
from ledger.storage.artifacts import ArtifactStore
from ledger.verification.evidence import BlockClaims
from ledger.verification.report import Check

__all__ = [
    "ModelFacts",
    "artifact_check",
    "claims_check",
    "lineage_check",
    "model_facts",
    "revocation_check",
]


def revocation_check(
    facts: ChainFacts, snapshot: Snapshot, name: str, record_hash: str, what: str
) -> Check:
    """``name`` passes if ``record_hash`` is not revoked at the snapshot; a failure says why."""
    state = snapshot.record(record_hash)
    if state is not None and state.revoked:
        revocation = facts.event("RecordRevoked", record_hash, snapshot).event
        reason = f" ({revocation.reason}, block {revocation.block_number})" if revocation else ""
        return Check(name, False, f"{what} {record_hash} is revoked{reason}")
    return Check(name, True, f"{what} {record_hash} is not revoked")


def lineage_check(
    facts: ChainFacts,
    snapshot: Snapshot,
    datasets: tuple[str, ...],
    claims: BlockClaims,
    name: str = "training_data",
) -> Check:
    """Every dataset in ``datasets`` and every ancestor registered and not revoked."""

    def lookup(content_hash: str) -> AncestorFacts | None:
        found = facts.event(
            "DatasetRegistered",
            content_hash,
            snapshot,
            claimed=claims.block("DatasetRegistered", content_hash),
        ).event
        if found is None:
            return None
        snapshot.prefetch(found.parents)  # the next level's states in one call
        state = snapshot.record(content_hash)
        return AncestorFacts(revoked=bool(state and state.revoked), parents=found.parents)

    snapshot.prefetch(datasets)
    ancestry = walk_ancestry(datasets, lookup)
    problems = [f"dataset {current} is not registered" for current in ancestry.unknown]
    for current in ancestry.revoked:
        revocation = facts.event("RecordRevoked", current, snapshot).event
        reason = f": {revocation.reason}" if revocation else ""
        problems.append(f"dataset {current} is revoked{reason}")
    if problems:
        return Check(name, False, "; ".join(sorted(problems)))
    count = len(ancestry.visited)
    return Check(name, True, f"{count} dataset(s) in the lineage, none revoked")


def _order_check(snapshot: Snapshot, model: ChainRecord, datasets: tuple[str, ...]) -> Check:
    """No training dataset registered after its model (the contract makes it impossible, so
    a failure means the node's answers do not add up)."""
    later = []
    for dataset in datasets:
        state = snapshot.record(dataset)
        if state is not None and state.registered_at > model.registered_at:
            later.append(f"dataset {dataset} at {state.registered_at}")
    if later:
        return Check(
            "datasets_before_model",
            False,
            f"the model was registered at {model.registered_at}, before "
            f"its training data: {', '.join(later)}",
        )
    return Check(
        "datasets_before_model",
        True,
        f"{len(datasets)} training dataset(s) registered before the model",
    )


@dataclass(frozen=True)
class ModelFacts:
    """A model's checks and what they found: shared by every receipt of the model."""

    model_hash: str
    checks: tuple[Check, ...]
    event: ModelRegistered | None
    record: ChainRecord | None


def model_facts(
    facts: ChainFacts, snapshot: Snapshot, model_hash: str, claims: BlockClaims
) -> ModelFacts:
    """``model_registered``, ``model_not_revoked``, ``datasets_before_model``, ``training_data``."""
    snapshot.prefetch(facts.cached_lineage([model_hash]))
    located = facts.event(
        "ModelRegistered",
        model_hash,
        snapshot,
        claimed=claims.block("ModelRegistered", model_hash),
    )
    event, record = located.event, snapshot.record(model_hash)
    if event is None or record is None:
        return ModelFacts(
            model_hash,
            (Check("model_registered", False, f"no model {model_hash} on chain"),),
            None,
            None,
        )
    checks = (
        Check(
            "model_registered",
            True,
            f"registered in block {event.block_number} by {event.registrant} (tx {event.tx_hash})",
        ),
        revocation_check(facts, snapshot, "model_not_revoked", model_hash, "model"),
        _order_check(snapshot, record, event.datasets),
        lineage_check(facts, snapshot, event.datasets, claims),
    )
    return ModelFacts(model_hash, checks, event, record)


def artifact_check(store: ArtifactStore | None, digests: list[tuple[str, str]]) -> Check:
    """Every named file in ``store`` still hashes to its on-chain hash (None: no store)."""
    if store is None:
        return Check("artifacts", None, "no artifact store given: files not checked")
    problems = []
    for what, digest in digests:
        if digest == ZERO_HASH:
            continue
        try:
            store.verified_path(digest)
        except LedgerError as exc:
            problems.append(f"{what}: {exc}")
    if problems:
        return Check("artifacts", False, "; ".join(problems))
    return Check("artifacts", True, f"{len(digests)} file(s) match their on-chain hashes")


def claims_check(facts: ChainFacts, snapshot: Snapshot, claims: BlockClaims) -> Check:
    """``block_hints``: every block the evidence names holds the event it claims (and in the
    transaction it claims). A wrong claim fails here; nothing else ever trusted it."""
    if not claims:
        return Check("block_hints", None, "the evidence names no blocks")
    wrong = []
    for claim in claims:
        event_name: EventName = claim.event  # type: ignore[assignment]
        located = facts.event(event_name, claim.key, snapshot, claimed=claim.block)
        event: Any = located.event
        if event is None:
            wrong.append(f"{claim.event} of {claim.key} is claimed in block {claim.block}, "
                         "but no such event is on chain")  # fmt: skip
        elif event.block_number != claim.block:
            wrong.append(f"{claim.event} of {claim.key} is in block {event.block_number}, "
                         f"not in block {claim.block} as the evidence says")  # fmt: skip
        elif claim.tx_hash is not None and claim.tx_hash != event.tx_hash:
            wrong.append(f"{claim.event} of {claim.key} is in tx {event.tx_hash}, "
                         f"not in tx {claim.tx_hash} as the evidence says")  # fmt: skip
    if wrong:
        return Check("block_hints", False, "; ".join(wrong))
    return Check("block_hints", True, f"{len(claims.claims)} claimed block(s) hold their events")

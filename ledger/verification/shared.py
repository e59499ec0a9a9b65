"""What the receipts of one verification run share, checked once per run at one snapshot of
the chain: a batch's anchoring and revocation, a model's checks and lineage, a signer's role
where a batch was anchored (or now), the artifact files, the blocks a piece of evidence claims.

Every check here is a frozen value, and the same object goes into the report of every receipt
that shares it: a bulk run of a hundred thousand receipts of one batch computes each once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.reading.chain_facts import ChainFacts, Located
from ledger.records import ChainRecord, hash_hex
from ledger.storage.artifacts import ArtifactStore
from ledger.verification.evidence import BlockClaims, ReceiptEvidence
from ledger.verification.lineage_checks import (
    ModelFacts,
    artifact_check,
    claims_check,
    model_facts,
    revocation_check,
)
from ledger.verification.report import Check

__all__ = ["Batch", "SharedChecks", "as_facts"]


@dataclass(frozen=True)
class Batch:
    """A batch's anchoring as a run found it: the event (if any), its record, and
    ``batch_not_revoked`` (None when there is no such batch on chain)."""

    located: Located
    record: ChainRecord | None
    not_revoked: Check | None


def as_facts(chain: Any) -> ChainFacts:
    """A :class:`ChainFacts` as it is, or one for a ``LedgerClient`` (fresh caches)."""
    return chain if isinstance(chain, ChainFacts) else ChainFacts.for_client(chain)


class SharedChecks:
    """The shared checks of one run of verifications at one snapshot, each computed once."""

    def __init__(self, facts: ChainFacts, store: ArtifactStore | None) -> None:
        self.facts = facts
        self.snapshot = facts.snapshot()
        self.store = store
        self._models: dict[str, ModelFacts] = {}
        self._batches: dict[str, Batch] = {}
        self._signers: dict[tuple[str, str | None], Check] = {}
        self._artifacts: dict[str, Check] = {}
        self._claims: dict[frozenset[Any], Check] = {}

    def prefetch(self, items: Sequence[ReceiptEvidence]) -> None:
        """Every state the run will need that is known upfront, in one round trip."""
        models = {hash_hex(e.receipt.model_hash) for e in items}
        batches = {e.anchoring.batch_id for e in items if e.anchoring is not None}
        signers = {e.receipt.service for e in items}
        self.snapshot.prefetch(
            batches | self.facts.cached_lineage(sorted(models)),
            {s for s in signers if not self.facts.follows(s)},
        )

    # -- shared parts --------------------------------------------------------------------------

    def model(self, model_hash: str, claims: BlockClaims) -> ModelFacts:
        if model_hash not in self._models:
            self._models[model_hash] = model_facts(self.facts, self.snapshot, model_hash, claims)
        return self._models[model_hash]

    def batch(self, batch_id: str, claims: BlockClaims) -> Batch:
        if batch_id not in self._batches:
            located = self.facts.event(
                "PredictionsAnchored",
                batch_id,
                self.snapshot,
                claimed=claims.block("PredictionsAnchored", batch_id),
            )
            not_revoked = None
            if located.event is not None:
                not_revoked = revocation_check(
                    self.facts, self.snapshot, "batch_not_revoked", batch_id, "batch"
                )
            self._batches[batch_id] = Batch(located, self.snapshot.record(batch_id), not_revoked)
        return self._batches[batch_id]

    def artifacts(self, model: ModelFacts) -> Check:
        if model.model_hash not in self._artifacts:
            assert model.event is not None
            self._artifacts[model.model_hash] = artifact_check(
                self.store,
                [("model", model.model_hash), ("training metadata", model.event.metadata_hash)],
            )
        return self._artifacts[model.model_hash]

    def claims_check(self, claims: BlockClaims) -> Check:
        key = frozenset(claims)
        if key not in self._claims:
            self._claims[key] = claims_check(self.facts, self.snapshot, claims)
        return self._claims[key]

    def signer(self, signer: str, batch: Batch | None) -> Check:
        """The signer held ``REGISTRAR_ROLE`` when the receipt was anchored (or now, if it
        is not): the anchoring is the only time the chain vouches for. A receipt anchored while
        its signer held the role stays valid after the role is revoked; one anchored while the
        role was revoked stays unauthorized even if the role is granted again later."""
        event = batch.located.event if batch is not None else None
        key = (signer, event.root if event is not None else None)
        if key not in self._signers:
            self._signers[key] = self._signer(signer, batch.located if event else None)
        return self._signers[key]

    def _signer(self, signer: str, located: Located | None) -> Check:
        facts, snapshot = self.facts, self.snapshot
        holds_now = facts.holds_role(signer, snapshot)
        if located is None:
            if holds_now:
                return Check("signer_authorized", True, f"{signer} holds REGISTRAR_ROLE")
            history = facts.history(signer, snapshot.head)
            return Check(
                "signer_authorized",
                False,
                f"{signer} lost REGISTRAR_ROLE in block {history[-1].block_number}"
                if history
                else f"{signer} never held REGISTRAR_ROLE",
            )
        anchored_in = located.event.block_number
        if not facts.role_at(signer, located, snapshot.head):
            history = facts.history(signer, snapshot.head, contract=located.contract)
            if not history:
                return Check("signer_authorized", False, f"{signer} never held REGISTRAR_ROLE")
            changes = ", ".join(
                f"{'granted' if c.granted else 'revoked'} in block {c.block_number}"
                for c in history
            )
            return Check(
                "signer_authorized",
                False,
                f"{signer} did not hold REGISTRAR_ROLE when this receipt was anchored "
                f"(block {anchored_in}; role changes: {changes})",
            )
        if holds_now:
            return Check("signer_authorized", True, f"{signer} holds REGISTRAR_ROLE")
        history = facts.history(signer, snapshot.head)
        lost = f" in block {history[-1].block_number}" if history else ""
        return Check(
            "signer_authorized",
            True,
            f"{signer} lost REGISTRAR_ROLE{lost}, after this receipt was anchored in block "
            f"{anchored_in}",
        )

    # -- a receipt's own checks ----------------------------------------------------------------

"""Verifying prediction receipts, one at a time or a whole batch at once, against the chain.

A receipt's checks, in report order: ``output_hash``, ``signature``, ``input_hash`` (when the
input is given), ``merkle_proof``, ``batch_anchored``, ``batch_not_revoked``,
``signer_authorized``, ``model_registered``, ``model_not_revoked``, ``datasets_before_model``,
``training_data``, ``issued_after_model``, ``issued_before_anchoring``, ``block_hints``,
``artifacts`` and ``rerun`` (when asked for).

What a receipt shares with the rest of its batch (the batch's anchoring and revocation, its
model and the model's whole lineage, the signer's role where the batch was anchored, the
artifact files) is checked once per run, at one snapshot of the chain
(:class:`~ledger.verification.shared.SharedChecks`), and the same frozen checks go into every
report; what is the receipt's own (its output hash, its
signature, its leaf and proof, its times) is local cryptography. Proofs of one batch share
their upper nodes, so a run hashes each inner node once.

The contract's ``verifyPrediction`` is ``MerkleProof.verify`` against the anchored root; the
proof is checked here with the same algorithm (``tests/ledger/test_merkle.py`` holds our proofs
to OpenZeppelin's) and the root against the batch's on-chain record, so no call is made per
receipt.

Time: a receipt's ``issued_at`` may not be earlier than its model's registration, nor later
than its batch's anchoring, each by more than ``clock_tolerance`` seconds (the clock skew
allowed between the service and the chain's nodes). Block times and ``issued_at`` are whole
seconds, and a receipt issued in its model's registration second is on time.

One module (just over 400 lines): the checks are listed in report order above and each is a
few lines; split, the order an auditor reads would be spread over files.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ledger.formats import _keccak
from ledger.formats.receipt_signing import recover_root_signer, recover_signer
from ledger.formats.receipts import (
    InvalidSignatureError,
    Receipt,
    ReceiptDomain,
    ReceiptError,
    ReceiptFormatError,
    input_hash,
    output_hash,
    receipt_leaf_hash,
)
from ledger.reading.chain_facts import ChainFacts
from ledger.storage.artifacts import ArtifactStore
from ledger.verification.evidence import (
    Anchoring,
    BlockClaims,
    ReceiptEvidence,
    evidence_from_document,
)
from ledger.verification.lineage_checks import ModelFacts
from ledger.verification.pending import PendingOf, asked_once, receipt_subjects, with_pending
from ledger.verification.report import Check, Checks, Report
from ledger.verification.shared import Batch, SharedChecks, as_facts
from ml.hashing import to_hex

__all__ = [
    "DEFAULT_CLOCK_TOLERANCE",
    "count_verdicts",
    "verify_documents",
    "verify_receipt",
    "verify_receipts",
]

DEFAULT_CLOCK_TOLERANCE = 60
"""Seconds of clock skew allowed between the service that issued a receipt and the chain."""


class _Run(SharedChecks):
    """One run of verifications: the shared checks, and each receipt's own."""

    def __init__(
        self, facts: ChainFacts, store: ArtifactStore | None, tolerance: int, *, bulk: bool
    ) -> None:
        super().__init__(facts, store)
        chain_id = facts.reader.chain_id()
        # A receipt is signed under the domain of the generation that served it: the newest
        # first, then each earlier one the newest reaches through predecessor(), and no other.
        self.domains = [ReceiptDomain(chain_id, a) for a in facts.reader.generations()]
        self.domain = self.domains[0]
        self.tolerance = tolerance
        hashers = _keccak.bulk_hashers() if bulk else _keccak.FALLBACK
        self._leaf, self._node = hashers.leaf, hashers.node
        self._parents: dict[tuple[bytes, str], bytes] = {}
        self._signed_parents: dict[tuple[bytes, bytes], bytes] = {}

    def root(self, leaf: bytes, proof: tuple[str, ...]) -> str:
        """The root a proof leads to from ``leaf``; inner nodes are hashed once per run."""
        current, parents, node = leaf, self._parents, self._node
        for sibling in proof:
            key = (current, sibling)
            parent = parents.get(key)
            if parent is None:
                other = bytes.fromhex(sibling[2:])
                if len(other) != 32:
                    raise ValueError(f"a proof node is 32 bytes, got {len(other)}")
                parent = parents[key] = node(current, other)
            current = parent
        return to_hex(current)

    def signer_of(self, receipt: Receipt, leaf: bytes) -> str:
        """Who signed ``receipt`` (whose leaf hash is ``leaf``): for format 2, its leaf folded
        up its ``signed_proof`` (inner nodes hashed once per run: a request's receipts share
        their upper nodes) must reach its ``signed_root``, whose signer is recovered once per
        request; as :func:`recover_signer` does, with the same errors.

        Raises:
            InvalidSignatureError: as :func:`recover_signer`.
        """
        signer = self._signer_of(receipt, leaf, self.domain)
        for older in self.domains[1:]:  # not ours under the newest domain: an older generation's?
            if signer == receipt.service:
                break
            found = self._signer_of(receipt, leaf, older)
            if found == receipt.service:
                return found
        return signer

    def _signer_of(self, receipt: Receipt, leaf: bytes, domain: ReceiptDomain) -> str:
        """Who signed ``receipt`` under ``domain``."""
        if receipt.format != 2:
            return recover_signer(receipt, domain)
        current, parents, node = leaf, self._signed_parents, self._node
        for sibling in receipt.signed_proof or ():
            key = (current, sibling)
            parent = parents.get(key)
            if parent is None:
                parent = parents[key] = node(current, sibling)
            current = parent
        if current != receipt.signed_root:
            raise InvalidSignatureError(
                f"the receipt's leaf and signed_proof lead to root {to_hex(current)}, not to the "
                f"signed root {to_hex(receipt.signed_root or b'')}: its fields were not signed"
            )
        return recover_root_signer(current, receipt.signature, domain)

    def verify(
        self,
        evidence: ReceiptEvidence,
        *,
        input_row: Mapping[str, Any] | None = None,
        rerun: Callable[[Mapping[str, Any]], Any] | None = None,
    ) -> Report:
        receipt, anchoring = evidence.receipt, evidence.anchoring
        checks = Checks()
        model_hash = to_hex(receipt.model_hash)
        claims = evidence.claims.with_anchoring(anchoring)

        # 1. The output is the one that was signed.
        actual, signed = output_hash(receipt.output), receipt.output_hash
        checks.add(
            "output_hash",
            actual == signed,
            "output matches output_hash"
            if actual == signed
            else f"output hashes to {to_hex(actual)}, the receipt says {to_hex(signed)}",
        )
        # 2. The service's key signed exactly these fields (format 2: with its request).
        leaf = receipt_leaf_hash(receipt, double_keccak=self._leaf)
        signer: str | None
        try:
            signer = self.signer_of(receipt, leaf)
        except ReceiptError as exc:
            signer = None
            checks.add("signature", False, str(exc))
        else:
            checks.add(
                "signature",
                signer == receipt.service,
                f"signed by {signer}"
                if signer == receipt.service
                else f"the receipt names {receipt.service} but {signer} signed these fields",
            )
        # 3. The input, when the verifier has it.
        if input_row is not None:
            try:
                ok = input_hash(input_row) == receipt.input_hash
                detail = "input matches" if ok else "input does not hash to input_hash"
            except ValueError as exc:  # NaN, a non-JSON value: it cannot be what was signed
                ok, detail = False, f"the input cannot be hashed: {exc}"
            checks.add("input_hash", ok, detail)

        # 4. Inclusion in a batch, and the batch on chain for this model.
        batch: Batch | None = None
        if anchoring is None and evidence.anchoring_error is not None:
            checks.add("merkle_proof", None, "never anchored")
            checks.add(
                "batch_anchored", False, f"anchoring failed for good: {evidence.anchoring_error}"
            )
        elif anchoring is None:
            checks.add("merkle_proof", None, "not anchored yet")
            checks.add("batch_anchored", None, "not anchored yet")
        else:
            leaf_hex = to_hex(leaf)
            try:
                root = self.root(leaf, anchoring.proof)
            except ValueError as exc:
                root = f"(malformed proof: {exc})"
            proof_ok = leaf_hex == anchoring.leaf and root == anchoring.batch_id
            checks.add(
                "merkle_proof",
                proof_ok,
                f"leaf {leaf_hex} is in batch {anchoring.batch_id}"
                if proof_ok
                else f"leaf {leaf_hex} with this proof gives root {root}, not {anchoring.batch_id}",
            )
            batch = self.batch(anchoring.batch_id, claims)
            event = batch.located.event
            if event is None:
                checks.add("batch_anchored", False, f"no batch {anchoring.batch_id} on chain")
            elif event.model_hash != model_hash:
                checks.add(
                    "batch_anchored",
                    False,
                    f"batch {anchoring.batch_id} was anchored for model {event.model_hash}, "
                    f"not {model_hash}",
                )
            else:
                checks.add(
                    "batch_anchored",
                    proof_ok,
                    f"anchored in block {event.block_number} (tx {event.tx_hash}); the proof "
                    f"{'leads' if proof_ok else 'does not lead'} to the anchored root",
                )
            if batch.not_revoked is not None:
                checks.items.append(batch.not_revoked)

        # 5. The signer may sign for the ledger.
        if signer is not None:
            checks.items.append(self.signer(signer, batch))

        # 6. The model and everything it was trained on.
        model = self.model(model_hash, claims)
        checks.extend(model.checks)

        # 7. Its times: after its model was registered, before its batch was anchored.
        checks.items.extend(self.times(receipt, model, batch, evidence.anchoring_error))

        # 8. Every block the evidence names holds what it claims.
        checks.items.append(self.claims_check(claims))

        # 9. The files, when a store is given.
        if model.event is not None:
            checks.items.append(self.artifacts(model))

        # 10. Optionally, run the model again on the input.
        if rerun is not None and input_row is not None:
            try:
                again = rerun(input_row)
            except Exception as exc:  # a finding for the report, whatever the model raised
                checks.add("rerun", False, f"re-running the model failed: {exc}")
            else:
                same = output_hash(again) == receipt.output_hash
                checks.add(
                    "rerun",
                    same,
                    "re-run reproduces the output" if same else f"re-run gave {again!r}",
                )
        return Report(
            to_hex(receipt.receipt_id), "receipt", tuple(checks.items), pending=anchoring is None
        )

    def times(
        self,
        receipt: Receipt,
        model: ModelFacts,
        batch: Batch | None,
        anchoring_error: str | None,
    ) -> tuple[Check, Check]:
        issued, tolerance = receipt.issued_at, self.tolerance
        if model.record is None:
            after = Check("issued_after_model", None, "no registered model to compare with")
        elif issued + tolerance >= model.record.registered_at:
            after = Check(
                "issued_after_model",
                True,
                f"issued at {issued}, {issued - model.record.registered_at} s after its model "
                f"was registered",
            )
        else:
            after = Check(
                "issued_after_model",
                False,
                f"issued at {issued}, {model.record.registered_at - issued} s before its model "
                f"was registered at {model.record.registered_at} (tolerance {tolerance} s): "
                "back-dated",
            )
        if batch is None:
            why = "never anchored" if anchoring_error is not None else "not anchored yet"
            before = Check("issued_before_anchoring", None, why)
        elif batch.located.event is None or batch.record is None:
            before = Check("issued_before_anchoring", None, "no anchored batch to compare with")
        elif issued <= batch.record.registered_at + tolerance:
            before = Check(
                "issued_before_anchoring",
                True,
                f"issued {batch.record.registered_at - issued} s before its batch was anchored",
            )
        else:
            before = Check(
                "issued_before_anchoring",
                False,
                f"issued at {issued}, {issued - batch.record.registered_at} s after its batch "
                f"was anchored at {batch.record.registered_at} (tolerance {tolerance} s)",
            )
        return after, before


def verify_receipts(
    items: Sequence[ReceiptEvidence],
    chain: Any,
    *,
    store: ArtifactStore | None = None,
    clock_tolerance: int = DEFAULT_CLOCK_TOLERANCE,
) -> list[Report]:
    """Verify many receipts at one snapshot of the chain: one report each, in order.

    ``chain`` is a :class:`~ledger.reading.chain_facts.ChainFacts` (keep one to share its caches
    between runs) or a ``LedgerClient``. Chain facts are read once per batch and per model;
    the states of every batch, model and cached lineage are read in one call.
    """
    run = _Run(as_facts(chain), store, clock_tolerance, bulk=len(items) > 1)
    run.prefetch(items)
    return [run.verify(evidence) for evidence in items]


def verify_documents(
    documents: Sequence[Any],
    chain: Any,
    *,
    store: ArtifactStore | None = None,
    clock_tolerance: int = DEFAULT_CLOCK_TOLERANCE,
    complete: Callable[[ReceiptEvidence], ReceiptEvidence] | None = None,
    pending_of: PendingOf | None = None,
) -> list[Report]:
    """:func:`verify_receipts` for receipt documents as ``GET /v1/receipts/{id}`` returns
    them: one report each, in order. A malformed document is an ``invalid`` report whose
    ``receipt_format`` check says why, not a refusal of the rest. ``complete`` may add to each
    document's evidence (the service fills in an anchoring from its receipt book).

    ``pending_of`` is the writer's word on a model or batch the chain lacks
    (:func:`~ledger.verification.pending.with_pending`, the rule of a single receipt), asked
    once per record for the whole run."""
    reports: list[Report | None] = []
    evidence: list[ReceiptEvidence] = []
    for position, document in enumerate(documents):
        try:
            found = evidence_from_document(document)
        except ReceiptFormatError as exc:
            reports.append(_malformed(position, document, str(exc)))
            continue
        evidence.append(complete(found) if complete is not None else found)
        reports.append(None)
    verified = verify_receipts(evidence, chain, store=store, clock_tolerance=clock_tolerance)
    if pending_of is not None:
        ask = asked_once(pending_of)
        verified = [
            with_pending(report, receipt_subjects(item), ask) if report.failed else report
            for report, item in zip(verified, evidence, strict=True)
        ]
    found_reports = iter(verified)
    return [r if r is not None else next(found_reports) for r in reports]


def count_verdicts(reports: Iterable[Report]) -> dict[str, int]:
    """How many reports are valid, invalid and pending."""
    counts = Counter(r.verdict for r in reports)
    return {"valid": counts["valid"], "invalid": counts["invalid"], "pending": counts["pending"]}


def _malformed(position: int, document: Any, problem: str) -> Report:
    subject = document.get("receipt_id") if isinstance(document, Mapping) else None
    return Report(
        subject if isinstance(subject, str) else f"#{position}",
        "receipt",
        (Check("receipt_format", False, problem),),
    )


def verify_receipt(
    receipt: Receipt,
    chain: Any,
    *,
    anchoring: Anchoring | None,
    store: ArtifactStore | None = None,
    input_row: Mapping[str, Any] | None = None,
    rerun: Callable[[Mapping[str, Any]], Any] | None = None,
    anchoring_error: str | None = None,
    claims: BlockClaims | None = None,
    clock_tolerance: int = DEFAULT_CLOCK_TOLERANCE,
) -> Report:
    """Verify one prediction receipt: signature, inclusion, anchoring, signer, model, lineage,
    times, claimed blocks, files, and optionally its input and a re-run of the model.

    ``anchoring_error`` says that the receipt's batch will never be anchored (the service gave
    up on it, e.g. its model was revoked first): the receipt is then invalid, not pending.
    Never raises for a bad receipt (a forged receipt is a finding); only an unreachable chain
    or an address with no ledger raises.
    """
    evidence = ReceiptEvidence(receipt, anchoring, claims or BlockClaims(), anchoring_error)
    run = _Run(as_facts(chain), store, clock_tolerance, bulk=False)
    run.prefetch([evidence])
    return run.verify(evidence, input_row=input_row, rerun=rerun)

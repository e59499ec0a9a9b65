"""A record the chain does not hold, but whose writer says it is on its way: ``pending``.

Verification trusts only the chain, so a record that is not on the canonical chain fails its
registration check (``dataset_registered``, ``model_registered``, ``batch_anchored``): from the
chain alone, "never written", "queued behind a fee spike" and "taken out by a reorganisation
and sent again" look the same. Only the writer knows which, so only a verifier that asks the
writer may say ``pending``, and then it says whose word that is:

* the service's own verification (``/v1/verify``, the console) asks its write pipeline;
* ``provenance verify --service URL`` and the browser verifier ask that service over HTTP
  (``GET /v1/records/{hash}`` answering 404 ``record-pending``);
* a verifier that talks straight to a node and asks no service keeps the chain's answer: the
  check fails and the verdict is ``invalid``.

Never the other way: a record the chain holds is judged by the chain, and what the writer says
is only ever a reason to wait, never a reason to pass. The check becomes "not applicable yet"
(``ok`` None) with the chain's finding and the writer's word in its detail, and the report
turns ``pending`` only when no other check failed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from ledger.verification.evidence import ReceiptEvidence
from ledger.verification.report import Check, Report

__all__ = ["REGISTRATION_CHECKS", "PendingOf", "asked_once", "receipt_subjects", "with_pending"]

PendingOf = Callable[[str], "str | None"]
"""A record hash -> who says it is pending and why (``"the service says its write is queued"``),
or None when nobody does."""

REGISTRATION_CHECKS = ("dataset_registered", "model_registered", "batch_anchored")
# how each says the chain lacks the record ("no model 0x.. on chain"): only absence can wait
_WHAT = {"dataset_registered": "dataset", "model_registered": "model", "batch_anchored": "batch"}


def with_pending(report: Report, subjects: Mapping[str, str], pending_of: PendingOf) -> Report:
    """``report`` with each failed registration check in ``subjects`` (check name -> the hash
    of the record it looks for) that ``pending_of`` vouches for turned into a pending one.
    The report is returned unchanged when no such check failed or nobody vouches."""
    checks = list(report.checks)
    changed = False
    for position, check in enumerate(checks):
        record = subjects.get(check.name)
        if check.ok is not False or record is None or check.name not in REGISTRATION_CHECKS:
            continue
        if not check.detail.startswith(f"no {_WHAT[check.name]} "):
            continue  # on chain but wrong (another model's batch): the chain's word stands
        said = pending_of(record)
        if said is None:
            continue
        checks[position] = Check(check.name, None, f"{check.detail} yet: pending ({said})")
        changed = True
    if not changed:
        return report
    return replace(report, checks=tuple(checks), pending=True)


def receipt_subjects(evidence: ReceiptEvidence) -> dict[str, str]:
    """The records a receipt's registration checks look for: its model, and its batch when
    the evidence names one (an unanchored receipt has no batch to wait for)."""
    subjects = {"model_registered": "0x" + bytes(evidence.receipt.model_hash).hex()}
    if evidence.anchoring is not None:
        subjects["batch_anchored"] = evidence.anchoring.batch_id
    return subjects


def asked_once(pending_of: PendingOf) -> PendingOf:
    """``pending_of`` asked at most once per record: the receipts of a bulk verification share
    their model and batch, and each question may be an HTTP request to the writer. One answer
    serves one run (a later run asks again: the write may have landed)."""
    answers: dict[str, str | None] = {}

    def ask(record_hash: str) -> str | None:
        key = record_hash.lower()
        if key not in answers:
            answers[key] = pending_of(record_hash)
        return answers[key]

    return ask

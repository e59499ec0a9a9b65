"""Verification of receipts, models and dataset files against the chain, trusting nothing else.

Each verifier returns a :class:`Report` of named checks and one verdict (see
:mod:`ledger.verification.report`). Reports never raise for a bad subject: a forged receipt is
a finding, not an exception. Only an unreachable chain, or an address where no ledger answers
(:class:`~ledger.reading.chain_reader.ContractNotFound`), raises.

Everything about lineage is read from the contract (storage for state, events for fields)
through :class:`~ledger.reading.chain_facts.ChainFacts`, which reads each fact once; the artifact
store, when given, is only ever compared against hashes taken from the chain.

======================  ==========================================================
``report``              :class:`Check`, :class:`Report`
``evidence``            what a document claims: :class:`Anchoring`, :class:`BlockClaims`
``lineage_checks``      record checks shared by all verifiers (revocation, lineage, files)
``shared``              what a run's receipts share, checked once (batch, model, signer)
``receipt_checks``      :func:`verify_receipt`, :func:`verify_receipts` (bulk)
``record_checks``       :func:`verify_model`, :func:`verify_dataset_bytes` (and ``_file``)
======================  ==========================================================
"""

from ledger.reading.chain_facts import ChainFacts
from ledger.verification.evidence import (
    Anchoring,
    BlockClaim,
    BlockClaims,
    ReceiptEvidence,
    evidence_from_document,
    receipt_documents,
)
from ledger.verification.receipt_checks import (
    DEFAULT_CLOCK_TOLERANCE,
    count_verdicts,
    verify_documents,
    verify_receipt,
    verify_receipts,
)
from ledger.verification.record_checks import (
    verify_dataset_bytes,
    verify_dataset_file,
    verify_model,
)
from ledger.verification.report import Check, Report, Verdict

__all__ = [
    "DEFAULT_CLOCK_TOLERANCE",
    "Anchoring",
    "BlockClaim",
    "BlockClaims",
    "ChainFacts",
    "Check",
    "ReceiptEvidence",
    "Report",
    "Verdict",
    "count_verdicts",
    "evidence_from_document",
    "receipt_documents",
    "verify_dataset_bytes",
    "verify_dataset_file",
    "verify_documents",
    "verify_model",
    "verify_receipt",
    "verify_receipts",
]

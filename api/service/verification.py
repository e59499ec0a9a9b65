"""Verification through the service: ``ledger.verify`` against the chain, plus what only the
server can add (its artifact store, a re-run or retraining of the model, the anchoring of a
receipt from its receipt book).

One :class:`~ledger.reading.chain_facts.ChainFacts` serves every verification for the service's
lifetime: a batch's anchoring, a model's lineage, a signer's role where a batch was anchored are
read once, and record states once per head block. Its event lookups start at the blocks the
service's index gives (trusted: a miss only costs a scan) after the blocks a document claims
(checked: a wrong claim is a failed ``block_hints``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, BinaryIO

from api.errors import InputRequired, LimitExceeded
from api.json_depth import depth_past
from api.schemas import ReportPublic
from api.schemas.verify import CheckPublic, ReceiptsReportPublic, VerifySummaryPublic
from api.service._core import Core
from api.service.datasets import Datasets
from api.service.models import Models
from api.service.predictions import Predictions
from ledger.errors import RecordPending
from ledger.formats.receipts import ReceiptFormatError
from ledger.records import hash_hex
from ledger.storage.artifacts import StreamTooLarge
from ledger.storage.row_index import RowIndexBuilder
from ledger.verification.pending import receipt_subjects, with_pending
from ledger.verify import (
    Anchoring,
    ChainFacts,
    Check,
    ReceiptEvidence,
    Report,
    count_verdicts,
    evidence_from_document,
    verify_dataset_file,
    verify_documents,
    verify_model,
    verify_receipt,
)
from ml.errors import TooLarge
from ml.hashing import to_hex
from ml.scanning import scan_file

__all__ = ["Verification"]


class Verification:
    """Reports of named checks and one verdict, for receipts, models and dataset files."""

    def __init__(
        self, core: Core, datasets: Datasets, models: Models, predictions: Predictions
    ) -> None:
        self._core = core
        self._datasets = datasets
        self._models = models
        self._predictions = predictions
        self._facts = ChainFacts.for_client(core.client)

    def _pending_of(self, record_hash: str) -> str | None:
        """What this service says of a record the chain does not hold: its write's state
        while the write pipeline holds it (see :mod:`ledger.verification.pending`)."""
        state = self._core.writes.pending(hash_hex(record_hash))
        return None if state is None else f"this service's write of it is {state}"

    def _complete(self, evidence: ReceiptEvidence) -> ReceiptEvidence:
        """The receipt book may know more than the client's copy: an anchoring, or that the
        batch will never be anchored."""
        if evidence.anchoring is not None:
            return evidence
        stored = self._core.receipts.get(to_hex(evidence.receipt.receipt_id))
        if stored is not None and stored.status == "anchored":
            return replace(evidence, anchoring=Anchoring.from_json(stored.to_json()))
        if stored is not None and stored.status == "failed":
            return replace(evidence, anchoring_error=stored.error or "the batch was refused")
        return evidence

    def receipt(
        self,
        document: dict[str, Any],
        *,
        input_row: dict[str, Any] | None = None,
        rerun: bool = False,
    ) -> ReportPublic:
        """Verify a receipt document (the fields the service returned, anchored or not)."""
        if rerun and input_row is None:
            raise InputRequired("rerun needs the input row")
        try:
            evidence = self._complete(evidence_from_document(document))
        except ValueError as exc:
            raise ReceiptFormatError(f"not a receipt: {exc}") from None
        model_hash = to_hex(evidence.receipt.model_hash)
        run_again: Callable[[dict[str, Any]], Any] | None = None
        if rerun:

            def run_again(row: dict[str, Any]) -> Any:
                return self._predictions.reproduce_output(model_hash, row)

        report = verify_receipt(
            evidence.receipt,
            self._facts,
            anchoring=evidence.anchoring,
            store=self._core.store,
            input_row=input_row,
            rerun=run_again,
            anchoring_error=evidence.anchoring_error,
            clock_tolerance=self._core.settings.clock_tolerance,
        )
        return _public(with_pending(report, receipt_subjects(evidence), self._pending_of))

    def receipts(self, documents: Sequence[Any]) -> ReceiptsReportPublic:
        """Verify many receipt documents at one snapshot of the chain: one report each, in
        order, and how many are valid, invalid and pending. A malformed document is an
        ``invalid`` report (its ``receipt_format`` check says why), not a refusal of the rest.
        A model or batch the chain lacks while this service's write of it is in flight is
        pending, as for one receipt (:mod:`ledger.verification.pending`).

        Raises:
            LimitExceeded: more documents than ``max_verify_receipts``.
        """
        limit = self._core.settings.max_verify_receipts
        if len(documents) > limit:
            raise LimitExceeded(
                f"{len(documents)} receipts exceed max_verify_receipts = {limit}",
                limit="max_verify_receipts",
            )
        reports = verify_documents(
            documents,
            self._facts,
            store=self._core.store,
            clock_tolerance=self._core.settings.clock_tolerance,
            complete=self._complete,
            pending_of=self._pending_of,
        )
        views: dict[Check, CheckPublic] = {}
        return ReceiptsReportPublic.model_construct(
            summary=VerifySummaryPublic.model_construct(**count_verdicts(reports)),
            reports=[_public(r, views) for r in reports],
        )

    def receipts_file(self, stream: BinaryIO) -> ReceiptsReportPublic:
        """:meth:`receipts` for an uploaded file: a JSON list of receipts, ``{"receipts":
        [...]}``, or JSON lines (one receipt per line), at most ``max_upload_bytes``.

        Raises:
            TooLarge: the file is larger than ``max_upload_bytes``.
            ReceiptFormatError: the file is none of those forms, or nests too deep.
        """
        return self.receipts(self._read_documents(stream))

    def _read_documents(self, stream: BinaryIO) -> list[Any]:
        core = self._core
        limit = core.settings.max_upload_bytes
        try:
            staged = core.store.stage(stream, max_bytes=limit)
        except StreamTooLarge:
            raise TooLarge(limit="max_upload_bytes", maximum=limit) from None
        try:
            text = staged.path.read_bytes()
        finally:
            core.store.discard(staged)
        return _documents(text, core.settings.max_json_depth)

    def model(self, model_hash: str, *, retrain_model: bool = False) -> ReportPublic:
        """Verify a model; with ``retrain_model``, train it again from its registered dataset
        and metadata in a training process, and judge the result (:mod:`ml.reproduce`:
        identical, or equivalent within its algorithm's tolerance in another environment)."""
        try:
            indexed = self._models.indexed(model_hash)
        except RecordPending:
            if retrain_model:
                raise  # nothing to retrain from until it is on chain
            report = verify_model(hash_hex(model_hash), self._facts, store=self._core.store)
            subjects = {"model_registered": report.subject}
            return _public(with_pending(report, subjects, self._pending_of))
        core = self._core

        def again() -> tuple[bool, str]:
            with self._models.training_file(indexed.datasets[0]) as (dataset, _):
                retrained = core.training.retrain(
                    dataset,
                    core.store.read_bytes(indexed.model_hash),
                    indexed.model_hash,
                    core.store.read_bytes(indexed.metadata_hash),
                    time_limit=core.settings.training_time_limit,
                    memory_limit=core.settings.max_memory_bytes,
                    owner=core,
                )
            return retrained.ok, f"{retrained.verdict}: {retrained.detail}"

        report = verify_model(
            indexed.model_hash,
            self._facts,
            store=self._core.store,
            retrain=again if retrain_model else None,
        )
        return _public(report)

    def dataset(self, stream: BinaryIO) -> ReportPublic:
        """Is this exact file registered, are its rows the registered rows, is its lineage
        sound? The file is staged on disk under the upload limit and scanned in flat memory,
        never kept in the store."""
        core = self._core
        limit = core.settings.max_upload_bytes
        try:
            staged = core.store.stage(stream, max_bytes=limit)
        except StreamTooLarge:
            raise TooLarge(limit="max_upload_bytes", maximum=limit) from None
        limits = core.settings.dataset_limits()

        def root_of() -> str:
            built = core.store.scratch_path(".rows")
            try:
                with RowIndexBuilder(built) as rows:
                    scan_file(staged.path, limits, digests=rows.add)
                    info = rows.finish()
            finally:
                built.unlink(missing_ok=True)
            return to_hex(info.root)

        try:
            report = verify_dataset_file(staged.digest, self._facts, rows_root=root_of)
        finally:
            core.store.discard(staged)
        subjects = {"dataset_registered": staged.digest}
        return _public(with_pending(report, subjects, self._pending_of))


def _documents(text: bytes, max_depth: int) -> list[Any]:
    """The receipts of an uploaded file: a JSON list, ``{"receipts": [...]}``, or JSON lines.
    Its nesting is measured before any parser sees it (see ``api.app.BodyGuard``)."""
    if depth_past(text, max_depth) is not None:
        raise ReceiptFormatError(f"the file nests deeper than max_json_depth = {max_depth}")
    try:
        whole = json.loads(text)
    except ValueError:  # JSON lines: one receipt per line
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as exc:
            raise ReceiptFormatError(f"not JSON, nor JSON lines of receipts: {exc}") from None
    if isinstance(whole, dict):
        receipts = whole.get("receipts")
        return receipts if isinstance(receipts, list) else [whole]  # or one receipt alone
    if isinstance(whole, list):
        return whole
    raise ReceiptFormatError('expected a list of receipts, {"receipts": [...]} or JSON lines')


def _public(report: Report, views: dict[Check, CheckPublic] | None = None) -> ReportPublic:
    """The public view of a report, built without validating it again: every field comes
    from a :class:`Report`, so it has the schema's shape by construction. ``views`` shares one
    view per distinct check across the reports of a bulk answer, whose receipts share most of
    their checks (ten thousand reports, a dozen checks each)."""
    views = {} if views is None else views
    checks = []
    for check in report.checks:
        view = views.get(check)
        if view is None:
            view = views[check] = CheckPublic.model_construct(
                name=check.name, ok=check.ok, detail=check.detail
            )
        checks.append(view)
    return ReportPublic.model_construct(
        subject=report.subject,
        kind=report.kind,
        verdict=report.verdict,
        checks=checks,
        **report.extra,
    )

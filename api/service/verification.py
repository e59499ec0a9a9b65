"""Verification through the service: ``ledger.verify`` against the chain, plus what only the
server can add (its artifact store, a re-run or retraining of the model, the anchoring of a
receipt from its receipt book)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO

from api.errors import InputRequired
from api.schemas import ReportPublic
from api.service._core import Core
from api.service.datasets import Datasets
from api.service.models import Models
from api.service.predictions import Predictions
from ledger.receipts import Receipt, ReceiptFormatError
from ledger.rows import rows_root
from ledger.verify import Anchoring, Report, verify_dataset_bytes, verify_model, verify_receipt
from ml.datasets import parse_dataset
from ml.errors import TooLarge
from ml.hashing import to_hex
from ml.training import retrain

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
            receipt = Receipt.model_validate(
                {k: document.get(k) for k in Receipt.model_fields if k in document}
            )
            anchoring = Anchoring.from_json(document)
        except ValueError as exc:
            raise ReceiptFormatError(f"not a receipt: {exc}") from None
        anchoring_error = None
        if anchoring is None:  # the book may know more than the client's copy
            stored = self._core.receipts.get(to_hex(receipt.receipt_id))
            if stored is not None and stored.status == "anchored":
                anchoring = Anchoring.from_json(stored.to_json())
            elif stored is not None and stored.status == "failed":
                anchoring_error = stored.error or "the batch was refused"
        model_hash = to_hex(receipt.model_hash)
        run_again: Callable[[dict[str, Any]], Any] | None = None
        if rerun:

            def run_again(row: dict[str, Any]) -> Any:
                return self._predictions.reproduce_output(model_hash, row)

        report = verify_receipt(
            receipt,
            self._core.client,
            anchoring=anchoring,
            store=self._core.store,
            input_row=input_row,
            rerun=run_again,
            anchoring_error=anchoring_error,
        )
        return _public(report)

    def model(self, model_hash: str, *, retrain_model: bool = False) -> ReportPublic:
        """Verify a model; with ``retrain_model``, train it again from its registered dataset
        and metadata, and compare the hashes."""
        indexed = self._models.indexed(model_hash)

        def again() -> str:
            metadata = self._core.json_artifact(indexed.metadata_hash) or {}
            trained = retrain(self._datasets.load(indexed.datasets[0]), metadata)
            return to_hex(trained.model_hash)

        report = verify_model(
            indexed.model_hash,
            self._core.client,
            store=self._core.store,
            retrain=again if retrain_model else None,
        )
        return _public(report)

    def dataset(self, stream: BinaryIO) -> ReportPublic:
        """Is this exact file registered, are its rows the registered rows, is its lineage
        sound? The file is staged on disk under the upload limit, never kept in the store."""
        core = self._core
        limit = core.settings.max_upload_bytes
        try:
            staged = core.store.stage(stream, max_bytes=limit)
        except ValueError:
            raise TooLarge(limit="max_upload_bytes", maximum=limit) from None
        try:
            data = staged.path.read_bytes()
        finally:
            core.store.discard(staged)
        limits = core.settings.dataset_limits()

        def root_of(raw: bytes) -> str:
            return to_hex(rows_root(parse_dataset(raw, limits=limits).row_digests()))

        return _public(verify_dataset_bytes(data, core.client, rows_root=root_of))


def _public(report: Report) -> ReportPublic:
    return ReportPublic(**report.to_json())

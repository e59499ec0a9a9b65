"""Predictions (flow 4): run a live model on input rows and sign one receipt per row; and
re-run a receipt's prediction for verification."""

from __future__ import annotations

from typing import Any

from api.errors import LimitExceeded, RecordTainted
from api.schemas import PredictPublic, ReceiptPublic
from api.service._core import Core
from api.service.models import Models
from ledger.errors import RecordIsRevoked
from ledger.formats.receipts import input_hash
from ledger.index.lineage import first_revoked_ancestor
from ledger.storage.receipt_book import StoredReceipt
from ml.artifacts import LoadedModel, load_model
from ml.hashing import to_hex

__all__ = ["Predictions"]


class Predictions:
    """Predictions from registered models, each with a signed, durable receipt."""

    def __init__(self, core: Core, models: Models) -> None:
        self._core = core
        self._models = models

    def live(self, model_hash: str) -> LoadedModel:
        """The model, loaded once from a re-hashed file; revoked or tainted models refused."""
        core = self._core
        indexed = self._models.indexed(model_hash)
        if indexed.revoked:
            raise RecordIsRevoked(f"model {model_hash} is revoked")
        revoked = first_revoked_ancestor(indexed.datasets, core.index.dataset)
        if revoked is not None:
            raise RecordTainted(
                f"model {model_hash} was trained on data derived from revoked dataset {revoked}"
            )
        return core.models_cache.get_or_make(
            indexed.model_hash,
            lambda: load_model(
                core.store.read_bytes(indexed.model_hash), bytes.fromhex(indexed.model_hash[2:])
            ),
        )

    def predict(self, model_hash: str, rows: list[dict[str, Any]]) -> PredictPublic:
        """Run the model on ``rows`` and sign one receipt per row (flow 4); the receipts are
        durable before this returns, and the anchorer batches them on chain."""
        core = self._core
        if len(rows) > core.settings.max_predict_rows:
            raise LimitExceeded(
                f"{len(rows)} rows exceed max_predict_rows = {core.settings.max_predict_rows}",
                limit="max_predict_rows",
            )
        model = self.live(model_hash)
        model_hash = to_hex(model.model_hash)  # normalised: the index lookup is done once
        result = model.predict(rows)
        outputs = result.receipt_outputs()
        receipts = [
            core.signer.sign(model_hash=model_hash, input_hash=input_hash(row), output=output)
            for row, output in zip(rows, outputs, strict=True)
        ]
        core.receipts.add(receipts, rows)  # durable before anyone sees them
        core.anchorer.notify()
        return PredictPublic(
            model_hash=model_hash,
            predictions=list(result.values),
            probabilities=result.class_probabilities(),
            # Signed here a moment ago: valid by construction, so not validated a second time.
            receipts=[
                ReceiptPublic.model_construct(**StoredReceipt(r, None, "pending").to_json())
                for r in receipts
            ],
        )

    def reproduce_output(self, model_hash: str, row: dict[str, Any]) -> Any:
        """What the stored model outputs for ``row``, in a receipt's ``output`` form.

        Used to re-run a receipt's prediction; a revoked model still runs here, because an
        auditor may need to reproduce what it said before it was revoked. The stored file is
        re-read (no cache): a re-run reproduces what the store holds now.
        """
        indexed = self._models.indexed(model_hash)
        model = load_model(self._core.store.read_bytes(indexed.model_hash), indexed.model_hash)
        return model.predict([row]).receipt_outputs()[0]

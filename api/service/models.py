"""Models: train and register (flow 3), read, and predict with signed receipts (flow 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from api.errors import LimitExceeded, RecordTainted
from api.schemas import ModelCreate, ModelPublic, ModelsPublic, PredictPublic, ReceiptPublic
from api.service._core import Core, Written
from api.service.datasets import Datasets
from api.service.views import model_view
from ledger.errors import AlreadyRegistered, RecordRevoked, UnknownModel
from ledger.index import IndexedModel
from ledger.lineage import first_revoked_ancestor
from ledger.receipt_book import StoredReceipt
from ledger.receipts import input_hash
from ml.artifacts import LoadedModel, load_model
from ml.hashing import to_hex
from ml.training import train

__all__ = ["Models"]


class Models:
    """Registered models, their files, and predictions from them."""

    def __init__(self, core: Core, datasets: Datasets) -> None:
        self._core = core
        self._datasets = datasets

    def indexed(self, model_hash: str) -> IndexedModel:
        """The indexed record; raises :class:`UnknownModel`."""
        indexed = self._core.index.model(model_hash)
        if indexed is None:
            raise UnknownModel(f"no model is registered under {model_hash}")
        return indexed

    def get(self, model_hash: str) -> ModelPublic:
        return model_view(self._core, self.indexed(model_hash))

    def list(self, *, offset: int, limit: int) -> ModelsPublic:
        items, count = self._core.index.models(offset=offset, limit=limit)
        return ModelsPublic(data=[model_view(self._core, m) for m in items], count=count)

    def content_path(self, model_hash: str) -> Path:
        """The stored model file, re-hashed first."""
        return self._core.store.verified_path(self.indexed(model_hash).model_hash)

    def train(self, request: ModelCreate) -> Written[ModelPublic]:
        """Train deterministically on a registered dataset (flow 3) and register the model."""
        core = self._core
        dataset_hash = self._datasets.live(request.dataset).content_hash
        trained = train(
            self._datasets.load(dataset_hash),
            algorithm=request.algorithm,
            target=request.target,
            features=request.features,
            params=request.params,
            test_size=request.test_size,
            seed=request.seed,
        )
        model_hash = to_hex(trained.model_hash)
        with core.locks.hold(model_hash):
            if (existing := core.index.model(model_hash)) is not None:
                return Written(model_view(core, existing), created=False)
            core.store.put_bytes(trained.model_bytes)
            metadata_hash = core.store.put_bytes(trained.metadata_bytes)
            created = True
            try:
                core.client.register_model(
                    model_hash, datasets=[dataset_hash], metadata_hash=metadata_hash
                )
            except AlreadyRegistered:
                created = False
            core.sync()
        return Written(self.get(model_hash), created=created)

    def live(self, model_hash: str) -> LoadedModel:
        """The model, loaded once from a re-hashed file; revoked or tainted models refused."""
        core = self._core
        indexed = self.indexed(model_hash)
        if indexed.revoked:
            raise RecordRevoked(f"model {model_hash} is revoked")
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
        indexed = self.indexed(model_hash)
        model = load_model(self._core.store.read_bytes(indexed.model_hash), indexed.model_hash)
        return model.predict([row]).receipt_outputs()[0]

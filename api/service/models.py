"""Models: train and register (flow 3), read, and predict with signed receipts (flow 4)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api.errors import TrainedFromOtherInputs
from api.schemas import ModelCreate, ModelPublic, ModelsPublic
from api.schemas.accepted import ModelAcceptedPublic
from api.service._core import Core, Written
from api.service._included import indexed_model
from api.service._versions import is_version, version_rows_file
from api.service.datasets import Datasets
from api.service.views import model_view
from api.streaming.rows import RECEIVED_AT
from ledger.errors import AlreadyRegistered, UnknownModel
from ledger.index.sqlite import IndexedModel
from ledger.records import ModelInput
from ledger.storage.artifacts import ArtifactCorrupted
from ledger.writes.pipeline import Included
from ml.errors import DatasetChanged
from ml.hashing import canonical_json, to_hex
from ml.training_pool import DatasetFile

if TYPE_CHECKING:  # ml.training brings scikit-learn: a service imports it at its first training
    from ml.training import TrainedModel

__all__ = ["Models"]


class Models:
    """Registered models, their files, and predictions from them."""

    def __init__(self, core: Core, datasets: Datasets) -> None:
        self._core = core
        self._datasets = datasets

    def indexed(self, model_hash: str) -> IndexedModel:
        """The indexed record; raises :class:`UnknownModel`."""
        self._core.catch_up()
        indexed = self._core.model(model_hash)
        if indexed is None:
            exc = UnknownModel(f"no model is registered under {model_hash}")
            raise self._core.not_found(exc, model_hash)
        return indexed

    def get(self, model_hash: str) -> ModelPublic:
        return model_view(self._core, self.indexed(model_hash))

    def list(self, *, offset: int, limit: int) -> ModelsPublic:
        self._core.catch_up()
        items, count = self._core.index.models(offset=offset, limit=limit)
        return ModelsPublic(data=[model_view(self._core, m) for m in items], count=count)

    def content_path(self, model_hash: str) -> Path:
        """The stored model file, re-hashed first."""
        return self._core.store.verified_path(self.indexed(model_hash).model_hash)

    def train(
        self, request: ModelCreate, *, wait: str = "final"
    ) -> Written[ModelPublic] | ModelAcceptedPublic:
        """Train deterministically on a registered dataset (flow 3) and register the model.
        ``wait`` as for :meth:`api.service.datasets.Datasets.register`: the training itself is
        always done before the answer (its result is what is queued); the OpenLineage run is
        told once the record is on chain (at the answer, or later for ``accepted``).

        Training runs in a training process, bounded by ``training_time_limit`` and
        ``max_memory_bytes`` (:mod:`ml.training_pool`). A model file registered already is
        answered with its record only when it came from this same request; from another
        training it is a :class:`TrainedFromOtherInputs` conflict (see its docstring)."""
        core = self._core
        dataset_hash = self._datasets.live(request.dataset).content_hash
        self._datasets.check_memory(dataset_hash, request.features)  # before it is loaded
        with self.training_file(dataset_hash) as (dataset, stream):
            features = request.features
            if stream is not None and features is None:
                features = [f for f in stream["default_features"] if f != request.target]
            try:
                trained = core.training.train(
                    dataset,
                    {
                        "algorithm": request.algorithm,
                        "target": request.target,
                        "features": features,
                        "params": request.params,
                        "test_size": request.test_size,
                        "seed": request.seed,
                    },
                    time_limit=core.settings.training_time_limit,
                    memory_limit=core.settings.max_memory_bytes,
                    owner=core,
                )
            except DatasetChanged as exc:  # the stored file no longer hashes to its name
                raise ArtifactCorrupted(dataset_hash, exc.detail, dataset.path) from None
        metadata_bytes = trained.metadata_bytes
        if stream is not None:  # the readings it was trained on, and when they arrived
            stream.pop("default_features", None)
            metadata_bytes = canonical_json({**json.loads(metadata_bytes), "stream": stream})
        model_hash = to_hex(trained.model_hash)
        if (existing := core.model(model_hash)) is not None:
            self._same_training(existing, trained)
            return Written(model_view(core, existing), created=False)
        core.store.put_bytes(trained.model_bytes)
        metadata_hash = core.store.put_bytes(metadata_bytes)
        item = ModelInput(model_hash, datasets=(dataset_hash,), metadata_hash=metadata_hash)
        if wait == "accepted" and core.writes.journal is not None:
            [accepted] = core.writes.accept_many([item])
            core.events.when_final(
                accepted, lambda i: core.events.trained(model_view(core, indexed_model(i)))
            )
            return ModelAcceptedPublic(model_hash=model_hash, url=f"/v1/models/{model_hash}")
        # gathered with other requests' writes
        outcome = core.writes.write_many([item], early=wait == "included")[0]
        core.catch_up()
        if isinstance(outcome, Included):
            view = model_view(core, indexed_model(outcome))
            if outcome.created:
                core.events.trained(view)
            return Written(view, created=outcome.created)
        if isinstance(outcome, AlreadyRegistered):  # by another writer on the same node
            core.sync()
            return Written(self.get(model_hash), created=False)
        raise outcome

    @contextmanager
    def training_file(
        self, dataset_hash: str
    ) -> Iterator[tuple[DatasetFile, dict[str, Any] | None]]:
        """The file a training process reads for a dataset, and for a stream version (whose
        rows are its chunks', :mod:`api.service._versions`) what its training metadata says
        of the readings, with the features a training takes by default: the stream's numeric
        columns, never the arrival time. The version's rows file lasts as long as the block."""
        core = self._core
        indexed = self._datasets.indexed(dataset_hash)
        metadata = core.json_artifact(indexed.metadata_hash)
        if not is_version(metadata):
            yield self._datasets.file(dataset_hash), None
            return
        with version_rows_file(core.store, indexed.content_hash, metadata) as rows:
            facts = dict(rows.facts)
            facts["default_features"] = [
                c["name"]
                for c in metadata.get("columns", [])
                if c.get("type") in ("integer", "float", "boolean") and c["name"] != RECEIVED_AT
            ]
            limits = core.settings.dataset_limits()
            yield DatasetFile(rows.path, rows.content_hash, limits), facts

    def _same_training(self, existing: IndexedModel, trained: TrainedModel) -> None:
        """Refuse to answer with a registered model that another training produced."""
        from ml.training import training_request

        registered = self._core.json_artifact(existing.metadata_hash) or {}
        asked = training_request(trained.metadata)
        if training_request(registered) != asked:
            raise TrainedFromOtherInputs(
                existing.model_hash,
                {**training_request(registered), "metrics": registered.get("metrics")},
            )

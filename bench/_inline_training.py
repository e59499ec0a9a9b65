"""The baseline of ``bench.bench_training``: the service as it trained before issue 19, in its
own threads, unbounded (``python -m bench._inline_training serve ...``).

Bench-only: it swaps the service's :class:`~ml.training_pool.TrainingPool` for an object with
the same methods that trains in process, then runs the ordinary CLI. The service itself has no
such mode (a training it cannot stop could take it down).
"""

from __future__ import annotations

from typing import Any

import api.service._core as core_module
from ml.datasets import load_dataset
from ml.training import TrainedModel, train
from ml.training_pool import DatasetFile


class InlineTraining:
    """Trains in the calling thread, as the service did: no process, no limits."""

    def train(self, dataset: DatasetFile, request: dict[str, Any], **_: Any) -> TrainedModel:
        return train(load_dataset(dataset.path, dataset.limits), **request)

    def warm(self) -> None:
        pass

    def cancel(self, owner: object) -> None:
        pass

    def close(self) -> None:
        pass


def main() -> None:
    core_module.shared_pool = lambda **_: InlineTraining()  # type: ignore[assignment]
    from api.cli import app

    app()


if __name__ == "__main__":
    main()

"""How much memory a training needs, estimated from a dataset's shape before it is loaded.

Why: training loads the whole table (:func:`ml.datasets.load_dataset`) and then its arrays; the
service checks this estimate against its limit before anything is read, so that a dataset too
large to train on is refused with a clear error instead of running a training process out of
memory (which :mod:`ml.training_pool` also bounds while it runs).
"""

from __future__ import annotations

from collections.abc import Sequence

from ml.datasets import Column, estimate_dataset_bytes
from ml.errors import MemoryLimitExceeded

__all__ = ["check_training_memory", "estimate_training_bytes"]

# float64 copies of the feature matrix and the target that training makes: the matrix itself,
# the train and test parts of the split, and one more that estimators take (centring, float32
# trees, scaled inputs); a bound, not a measurement of any one algorithm.
_ARRAY_COPIES = 4


def estimate_training_bytes(
    columns: Sequence[Column],
    row_count: int,
    size: int,
    *,
    features: Sequence[str] | None = None,
) -> int:
    """An upper estimate of the memory :func:`train` needs for a dataset of this shape.

    Why: training loads the whole table (:func:`ml.datasets.load_dataset`) and then its
    arrays; the service checks this estimate against its limit before loading, so that a
    dataset too large to train on is refused with a clear error instead of killing the
    process. ``features=None`` means every column but the target.
    """
    width = (len(columns) - 1 if features is None else len(features)) + 1
    arrays = _ARRAY_COPIES * 8 * row_count * width
    return estimate_dataset_bytes(columns, row_count, size) + arrays


def check_training_memory(
    columns: Sequence[Column],
    row_count: int,
    size: int,
    *,
    features: Sequence[str] | None = None,
    max_memory_bytes: int,
    limit: str = "max_memory_bytes",
) -> int:
    """Refuse (:class:`~ml.errors.MemoryLimitExceeded`, naming ``limit``) a training whose
    :func:`estimate_training_bytes` exceeds ``max_memory_bytes``; return the estimate."""
    estimate = estimate_training_bytes(columns, row_count, size, features=features)
    if estimate > max_memory_bytes:
        raise MemoryLimitExceeded(
            operation=f"training on {row_count:,} rows x {len(columns)} columns",
            limit=limit,
            maximum=max_memory_bytes,
            estimate=estimate,
        )
    return estimate

"""The metrics a training records, on its held-out rows (or its training rows).

Private to :mod:`ml.training`, whose docstring says which metric each task gets and why.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)

from ml._algorithms import Task

__all__ = ["evaluate"]


def _metric(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def evaluate(
    estimator: Any, task: Task, X: np.ndarray, y: np.ndarray
) -> tuple[dict[str, float | None], str | None]:
    predicted = estimator.predict(X)
    if task == "regression":
        return (
            {
                "r2": _metric(r2_score(y, predicted)) if len(y) >= 2 else None,
                "mse": _metric(mean_squared_error(y, predicted)),
                "mae": _metric(mean_absolute_error(y, predicted)),
            },
            None,
        )
    classes = estimator.classes_
    metrics: dict[str, float | None] = {"accuracy": _metric(accuracy_score(y, predicted))}
    # Binary only when the held-out labels are the two the model saw: a small split can hold a
    # class the training part lacks, and then the problem is multiclass (macro average).
    if len(classes) == 2 and set(np.unique(y)) <= set(classes):
        metrics["f1"] = _metric(f1_score(y, predicted, pos_label=classes[1], average="binary"))
        positive = y == classes[1]
        if positive.all() or not positive.any():
            metrics["roc_auc"] = None
        else:
            probabilities = estimator.predict_proba(X)[:, 1]
            metrics["roc_auc"] = _metric(roc_auc_score(positive, probabilities))
        return metrics, "binary"
    metrics["f1"] = _metric(f1_score(y, predicted, average="macro"))
    return metrics, "macro"

"""Real data, every algorithm: load → hash → clean → train → predict, checked against sklearn.

The reference side never touches ``ml``: it starts from scikit-learn's own arrays, applies the
same cleaning with plain Python, splits with ``train_test_split`` and fits the estimator class
directly. Metrics and predictions must be equal, not merely close.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import (
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from threadpoolctl import threadpool_limits

from ml.artifacts import load_model
from ml.datasets import load_dataset
from ml.hashing import sha256_file
from ml.training import ALGORITHMS, train
from ml.transforms import TransformSpec, derive

CLEAN = TransformSpec.from_json({"steps": [{"step": "drop_missing"}, {"step": "drop_duplicates"}]})
REFERENCE = {
    "linear_regression": LinearRegression,
    "ridge": Ridge,
    "logistic_regression": LogisticRegression,
    "mlp_regressor": MLPRegressor,
    "mlp_classifier": MLPClassifier,
    "random_forest_regressor": RandomForestRegressor,
    "random_forest_classifier": RandomForestClassifier,
    "gradient_boosting_classifier": GradientBoostingClassifier,
}
CASES = [
    (name, algorithm)
    for algorithm, algo in ALGORITHMS.items()
    for name in (("diabetes",) if algo.task == "regression" else ("breast_cancer", "iris"))
]


def _dedupe(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    seen: set[tuple] = set()
    keep = []
    for i, row in enumerate(zip(*X.T, y, strict=True)):
        key = tuple(v.item() for v in row)
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return X[keep], y[keep]


def _reference_metrics(task: str, estimator, X, y) -> dict[str, float]:  # type: ignore[no-untyped-def]
    predicted = estimator.predict(X)
    if task == "regression":
        return {
            "r2": r2_score(y, predicted),
            "mse": mean_squared_error(y, predicted),
            "mae": mean_absolute_error(y, predicted),
        }
    metrics = {"accuracy": accuracy_score(y, predicted)}
    if len(estimator.classes_) == 2:
        metrics["f1"] = f1_score(y, predicted, pos_label=estimator.classes_[1])
        metrics["roc_auc"] = roc_auc_score(y, estimator.predict_proba(X)[:, 1])
    else:
        metrics["f1"] = f1_score(y, predicted, average="macro")
    return metrics


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(("name", "algorithm"), CASES)
def test_real_data_through_every_algorithm(
    real_data: dict, small_params: dict, name: str, algorithm: str
) -> None:
    data = real_data[name]
    params = small_params[algorithm]

    # 1. Load and hash.
    raw = load_dataset(data.path)
    assert raw.content_hash == sha256_file(data.path)
    assert raw.row_count == len(data.y)

    # 2. Clean (iris has a duplicated row; the others are unchanged).
    cleaned = derive(raw, CLEAN)
    assert cleaned.parent_hashes == (raw.content_hash,)
    X_ref, y_ref = _dedupe(data.X, data.y)
    assert cleaned.dataset.row_count == len(y_ref)
    assert (name == "iris") == (len(y_ref) < len(data.y))

    # 3. Train through ml, and directly with scikit-learn on the same split.
    trained = train(cleaned.dataset, algorithm=algorithm, target=data.target, params=params)
    assert trained.features == data.features
    assert (
        trained.metadata["datasets"][0]["content_hash"] == "0x" + cleaned.dataset.content_hash.hex()
    )
    X_tr, X_te, y_tr, y_te = train_test_split(X_ref, y_ref, test_size=0.2, random_state=0)
    reference = REFERENCE[algorithm](
        **{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    )
    if "random_state" in reference.get_params():
        reference.set_params(random_state=0)
    with threadpool_limits(limits=1):
        reference.fit(X_tr, y_tr)
        expected = _reference_metrics(ALGORITHMS[algorithm].task, reference, X_te, y_te)
    assert trained.metrics == expected
    assert trained.metadata["split"]["test_rows"] == len(y_te)

    # 4. Predict from the stored file, as the service will.
    model = load_model(trained.model_bytes, trained.model_hash)
    rows = [dict(zip(data.features, x.tolist(), strict=True)) for x in X_te]
    result = model.predict(rows)
    with threadpool_limits(limits=1):
        assert list(result.values) == reference.predict(X_te).tolist()
        if model.task == "classification":
            np.testing.assert_array_equal(result.probabilities, reference.predict_proba(X_te))

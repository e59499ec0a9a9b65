"""Shared fixtures for the ml tests: scikit-learn's bundled datasets written as CSV files.

The datasets ship inside scikit-learn, so nothing is downloaded. Floats are written with
``repr`` so the CSV round-trips to exactly the arrays scikit-learn returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris


@dataclass(frozen=True)
class RealData:
    """One bundled dataset: the CSV file, the original arrays and the CSV column names."""

    name: str
    path: Path
    X: np.ndarray
    y: np.ndarray
    features: tuple[str, ...]
    target: str


def _cell(value: object) -> str:
    if isinstance(value, float | np.floating):
        return repr(float(value))
    return str(value.item() if isinstance(value, np.generic) else value)


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> Path:
    lines = [",".join(header)] + [",".join(_cell(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def real_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RealData]:
    base = tmp_path_factory.mktemp("real")
    out = {}
    for name, loader in (
        ("diabetes", load_diabetes),
        ("breast_cancer", load_breast_cancer),
        ("iris", load_iris),
    ):
        bunch = loader()
        features = tuple(f"f{i}" for i in range(bunch.data.shape[1]))
        if name == "iris":  # string labels, to exercise non-integer classes end to end
            y = np.asarray(bunch.target_names)[bunch.target].astype(str)
        elif name == "diabetes":
            y = bunch.target.astype(np.float64)
        else:
            y = bunch.target.astype(np.int64)
        rows = [[*x, label] for x, label in zip(bunch.data, y, strict=True)]
        path = write_csv(base / f"{name}.csv", [*features, "target"], rows)
        out[name] = RealData(name, path, bunch.data.astype(np.float64), y, features, "target")
    return out


@pytest.fixture
def csv_file(tmp_path: Path) -> Callable[[bytes], Path]:
    """Write bytes to a fresh file and return its path."""
    counter = iter(range(10**6))

    def make(data: bytes) -> Path:
        path = tmp_path / f"data{next(counter)}.csv"
        path.write_bytes(data)
        return path

    return make


# Small hyperparameters keep the suite fast; every algorithm gets non-default values.
SMALL_PARAMS: dict[str, dict[str, object]] = {
    "linear_regression": {},
    "ridge": {"alpha": 0.5},
    "logistic_regression": {"max_iter": 300},
    "mlp_regressor": {"hidden_layer_sizes": [8], "max_iter": 30, "learning_rate_init": 0.01},
    "mlp_classifier": {"hidden_layer_sizes": [8], "max_iter": 30},
    "random_forest_regressor": {"n_estimators": 5, "max_depth": 4},
    "random_forest_classifier": {"n_estimators": 5, "max_depth": 4},
    "gradient_boosting_classifier": {"n_estimators": 5, "max_depth": 2},
}


@pytest.fixture(scope="session")
def small_params() -> dict[str, dict[str, object]]:
    return SMALL_PARAMS

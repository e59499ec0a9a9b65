"""The eight supported algorithms: estimator class, task, and the types their files may hold.

Private: :mod:`ml.training` re-exports :data:`ALGORITHMS`. The trusted-type lists were
derived by saving each estimator fitted with its solver/loss/label-type variants and listing
every ``module.Class`` in the skops schema; :mod:`ml.artifacts` refuses any file that names a
type outside the list for its algorithm, before skops constructs anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier, MLPRegressor

__all__ = ["ALGORITHMS", "COMMON_TRUSTED_TYPES", "Algorithm", "Task", "type_name"]

Task = Literal["regression", "classification"]

# Containers, primitives, numpy arrays and scalar dtypes that any model file may contain.
COMMON_TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.str",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        "builtins.NoneType",
        "numpy.ndarray",
        "numpy.float64",
        "numpy.float32",
        "numpy.int64",
        "numpy.int32",
        "numpy.bool",
        "numpy.bool_",
        "numpy.str_",
    }
)
_TREE = frozenset({"sklearn.tree._tree.Tree"})
_RANDOM_STATE = frozenset({"numpy.random.mtrand.RandomState"})
_OPTIMIZERS = frozenset(
    {
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    }
)
_GB_LOSSES = frozenset(
    {
        "sklearn._loss._loss.CyExponentialLoss",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn._loss._loss.CyHalfMultinomialLoss",
        "sklearn._loss.link.HalfLogitLink",
        "sklearn._loss.link.Interval",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn._loss.loss.ExponentialLoss",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn.dummy.DummyClassifier",
    }
)


def type_name(cls: type) -> str:
    """``module.Class`` as skops writes it (the public module path is not used)."""
    return f"{cls.__module__}.{cls.__name__}"


@dataclass(frozen=True)
class Algorithm:
    """One supported algorithm: its name, task, scikit-learn estimator and trusted types."""

    name: str
    task: Task
    estimator: type[BaseEstimator]
    extra_trusted_types: frozenset[str] = frozenset()

    @property
    def trusted_types(self) -> frozenset[str]:
        """Every ``module.Class`` a file of this algorithm may contain."""
        return COMMON_TRUSTED_TYPES | self.extra_trusted_types | {type_name(self.estimator)}

    @property
    def estimator_name(self) -> str:
        """The estimator's ``module.Class``."""
        return type_name(self.estimator)


def _algorithm(
    name: str, task: Task, estimator: type[BaseEstimator], *extra: frozenset[str]
) -> tuple[str, Algorithm]:
    return name, Algorithm(name, task, estimator, frozenset().union(*extra))


ALGORITHMS: Mapping[str, Algorithm] = MappingProxyType(
    dict(
        [
            _algorithm("linear_regression", "regression", LinearRegression),
            _algorithm("ridge", "regression", Ridge),
            _algorithm("logistic_regression", "classification", LogisticRegression),
            _algorithm("mlp_regressor", "regression", MLPRegressor, _OPTIMIZERS, _RANDOM_STATE),
            _algorithm(
                "mlp_classifier",
                "classification",
                MLPClassifier,
                _OPTIMIZERS,
                _RANDOM_STATE,
                frozenset({"sklearn.preprocessing._label.LabelBinarizer"}),
            ),
            _algorithm(
                "random_forest_regressor",
                "regression",
                RandomForestRegressor,
                _TREE,
                frozenset({"sklearn.tree._classes.DecisionTreeRegressor"}),
            ),
            _algorithm(
                "random_forest_classifier",
                "classification",
                RandomForestClassifier,
                _TREE,
                frozenset({"sklearn.tree._classes.DecisionTreeClassifier"}),
            ),
            _algorithm(
                "gradient_boosting_classifier",
                "classification",
                GradientBoostingClassifier,
                _TREE,
                _RANDOM_STATE,
                _GB_LOSSES,
                frozenset({"sklearn.tree._classes.DecisionTreeRegressor"}),
            ),
        ]
    )
)

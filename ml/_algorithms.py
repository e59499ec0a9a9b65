"""The eight supported algorithms: estimator class, task, the types their files may hold, the
caps on the hyperparameters that set a training's cost, and the tolerance a retrain is judged
with in another numeric environment.

Private: :mod:`ml.training` re-exports :data:`ALGORITHMS`. The trusted-type lists were
derived by saving each estimator fitted with its solver/loss/label-type variants and listing
every ``module.Class`` in the skops schema; :mod:`ml.artifacts` refuses any file that names a
type outside the list for its algorithm, before skops constructs anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier, MLPRegressor

from ml.errors import ParameterCapExceeded

__all__ = [
    "ALGORITHMS",
    "COMMON_TRUSTED_TYPES",
    "SOLVER_TOLERANCE",
    "Algorithm",
    "Cap",
    "Task",
    "type_name",
]

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


@dataclass(frozen=True)
class Cap:
    """The most a cost-setting hyperparameter may ask for: its ``value``, ``each`` item of an
    array (a layer's width), or the array's ``length`` (the number of layers).

    Why caps: the time and memory limits of a training stop a runaway job, but a request that
    asks for 10^32 trees is refused before any work, naming the parameter and its cap."""

    param: str
    maximum: int
    measure: Literal["value", "each", "length"] = "value"

    def measure_of(self, value: Any) -> tuple[float | None, str]:
        """The number this cap bounds in ``value``, and how a message names it (None: nothing
        to measure here)."""
        is_array = isinstance(value, list | tuple)
        if self.measure == "length":
            return (len(value), "its number of layers") if is_array else (None, "")
        items = value if is_array else [value]
        numbers = [v for v in items if isinstance(v, int | float) and v == v]  # v == v: not NaN
        if not numbers:
            return None, ""
        return max(numbers), "its largest item" if is_array else "its value"


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
    caps: tuple[Cap, ...] = ()
    # The largest relative difference a retrain in another numeric environment may show in its
    # fitted parameters and outputs and still be "equivalent" (ml/reproduce.py): for exact
    # solvers (least squares, trees) and adam/sgd networks far above the noise between OpenBLAS
    # kernels (the reports of tests/api/test_reproducible_across_kernels.py state it); for
    # solvers that stop at a gradient tolerance (lbfgs and the other iterative solvers named in
    # ``iterative_solvers``) the kernels lead them along other paths to points up to about 1e-2
    # apart (the same reports), so those are held to
    # SOLVER_TOLERANCE and, where they can warm-start, to "the registered model is a solution
    # of its recorded training" (ml/reproduce.py, step 4).
    tolerance: float = 1e-8
    iterative_solvers: frozenset[str] = frozenset()

    def check_caps(self, params: Mapping[str, Any]) -> None:
        """Refuse (:class:`~ml.errors.ParameterCapExceeded`) a cost-setting hyperparameter past
        its cap, before scikit-learn sees it; what is not a number is left to the type checks."""
        for cap in self.caps:
            value = params.get(cap.param)
            if value is None or isinstance(value, bool | str):
                continue
            measured, what = cap.measure_of(value)
            if measured is not None and measured > cap.maximum:
                raise ParameterCapExceeded(
                    cap.param, algorithm=self.name, cap=cap.maximum, value=value, what=what
                )

    def tolerance_for(self, params: Mapping[str, Any]) -> float:
        """The tolerance for a training with these requested parameters."""
        default = self.estimator().get_params().get("solver")
        solver = params.get("solver", default) if isinstance(params, Mapping) else default
        return SOLVER_TOLERANCE if solver in self.iterative_solvers else self.tolerance

    @property
    def trusted_types(self) -> frozenset[str]:
        """Every ``module.Class`` a file of this algorithm may contain."""
        return COMMON_TRUSTED_TYPES | self.extra_trusted_types | {type_name(self.estimator)}

    @property
    def estimator_name(self) -> str:
        """The estimator's ``module.Class``."""
        return type_name(self.estimator)


SOLVER_TOLERANCE = 5e-2
_LINEAR_CAPS = (Cap("max_iter", 100_000),)
_LOGISTIC_SOLVERS = frozenset({"lbfgs", "liblinear", "newton-cg", "newton-cholesky", "sag", "saga"})
_RIDGE_SOLVERS = frozenset({"sag", "saga", "lbfgs", "sparse_cg", "lsqr"})
_MLP_CAPS = (
    Cap("max_iter", 10_000),
    Cap("max_fun", 1_000_000),
    Cap("hidden_layer_sizes", 1_024, "each"),
    Cap("hidden_layer_sizes", 16, "length"),
)
_FOREST_CAPS = (Cap("n_estimators", 1_000), Cap("max_depth", 100), Cap("max_leaf_nodes", 1_000_000))
_BOOSTING_CAPS = (
    Cap("n_estimators", 5_000),
    Cap("max_depth", 32),
    Cap("max_leaf_nodes", 100_000),
)


def _algorithm(
    name: str,
    task: Task,
    estimator: type[BaseEstimator],
    *extra: frozenset[str],
    caps: tuple[Cap, ...] = (),
    tolerance: float = 1e-8,
    iterative_solvers: frozenset[str] = frozenset(),
) -> tuple[str, Algorithm]:
    return name, Algorithm(
        name, task, estimator, frozenset().union(*extra), caps, tolerance, iterative_solvers
    )


ALGORITHMS: Mapping[str, Algorithm] = MappingProxyType(
    dict(
        [
            _algorithm("linear_regression", "regression", LinearRegression),
            _algorithm(
                "ridge", "regression", Ridge, caps=_LINEAR_CAPS, iterative_solvers=_RIDGE_SOLVERS
            ),
            _algorithm(
                "logistic_regression",
                "classification",
                LogisticRegression,
                caps=_LINEAR_CAPS,
                iterative_solvers=_LOGISTIC_SOLVERS,
            ),
            _algorithm(
                "mlp_regressor",
                "regression",
                MLPRegressor,
                _OPTIMIZERS,
                _RANDOM_STATE,
                caps=_MLP_CAPS,
                tolerance=1e-5,
                iterative_solvers=frozenset({"lbfgs"}),
            ),
            _algorithm(
                "mlp_classifier",
                "classification",
                MLPClassifier,
                _OPTIMIZERS,
                _RANDOM_STATE,
                frozenset({"sklearn.preprocessing._label.LabelBinarizer"}),
                caps=_MLP_CAPS,
                tolerance=1e-5,
                iterative_solvers=frozenset({"lbfgs"}),
            ),
            _algorithm(
                "random_forest_regressor",
                "regression",
                RandomForestRegressor,
                _TREE,
                frozenset({"sklearn.tree._classes.DecisionTreeRegressor"}),
                caps=_FOREST_CAPS,
            ),
            _algorithm(
                "random_forest_classifier",
                "classification",
                RandomForestClassifier,
                _TREE,
                frozenset({"sklearn.tree._classes.DecisionTreeClassifier"}),
                caps=_FOREST_CAPS,
            ),
            _algorithm(
                "gradient_boosting_classifier",
                "classification",
                GradientBoostingClassifier,
                _TREE,
                _RANDOM_STATE,
                _GB_LOSSES,
                frozenset({"sklearn.tree._classes.DecisionTreeRegressor"}),
                caps=_BOOSTING_CAPS,
            ),
        ]
    )
)

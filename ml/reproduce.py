"""Judging a retrain: is the registered model what its recorded training produces?

What "reproduced" means (the README says it in one paragraph):

1. **identical**: the retrained model file is the registered one, byte for byte (same SHA-256).
   Where the numeric environment (:mod:`ml.environment`: BLAS kernels, numpy's SIMD loops,
   library versions) is the one recorded in the training metadata, nothing less is accepted.
2. **equivalent within a tolerance**: where the environment differs (another CPU, another
   OpenBLAS kernel set, or a model whose metadata predates the environment record), the two
   models are compared by what they mean, with the tolerance its algorithm declares
   (:attr:`ml._algorithms.Algorithm.tolerance`):

   * the fitted parameters: the same structure, the same integers and labels exactly (tree
     shapes, iteration counts, classes), every float array within ``tolerance`` relative to the
     array's largest magnitude;
   * the outputs on the dataset's rows: predictions (regression) or class probabilities
     (classification) within ``tolerance`` relative to their largest magnitude, and the same
     labels wherever the registered model's two most likely classes are further apart than
     that;
   * the metadata: the same request (datasets, algorithm, parameters, features, target,
     split) and warnings, metrics within the tolerance;
   * for a solver that stops at a gradient tolerance and can warm-start (logistic
     regression's lbfgs, newton-cg, newton-cholesky, sag, saga), the registered model must
     also be a solution of its recorded training here: the same solver, started from the
     registered coefficients on the recorded training rows, takes no step. Such solvers
     reach points up to about 1e-2 apart on different kernels, both solutions within the
     solver's own ``tol``; a coefficient moved beyond that makes the solver move.

   Anything else is **different**, with the first difference named: the registered file is not
   what this training produces.

The tolerances are far above the last-bit noise of another kernel and far below a change a user
would notice: ``tests/api/test_reproducible_across_kernels.py`` retrains every algorithm under
four OpenBLAS kernel sets (the ``equivalent`` detail of each report states the differences it
found) and fails forgeries whose learned value moved by 1%.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.tree._tree import Tree

from ml._algorithms import ALGORITHMS
from ml.artifacts import load_model
from ml.datasets import Dataset
from ml.environment import describe_environment
from ml.errors import MlError
from ml.hashing import sha256_bytes, to_hex
from ml.training import build_estimator, training_rows

__all__ = ["Reproduction", "judge_retrain"]

Verdict = Literal["identical", "equivalent", "different"]

# Metadata keys that describe the machine, not the training: they may differ between two
# honest trainings, and the comparison says so instead of failing on them.
_ENVIRONMENT_KEYS = ("environment", "versions")
_NUMERIC_KEYS = ("metrics",)


@dataclass(frozen=True)
class Reproduction:
    """The verdict on one retrain, and the sentence a report shows for it."""

    verdict: Verdict
    detail: str

    @property
    def ok(self) -> bool:
        return self.verdict != "different"

    def to_json(self) -> dict[str, str]:
        return {"verdict": self.verdict, "detail": self.detail}


class _Mismatch(Exception):
    """Two fitted models differ in structure or in a value compared exactly."""


def judge_retrain(
    registered_bytes: bytes,
    registered_hash: bytes,
    registered_metadata: Mapping[str, Any],
    retrained_bytes: bytes,
    retrained_metadata: Mapping[str, Any],
    dataset: Dataset,
) -> Reproduction:
    """Compare a retrained model with the registered one (see the module docstring)."""
    retrained_hash = sha256_bytes(retrained_bytes)
    recorded, here = registered_metadata.get("environment"), retrained_metadata.get("environment")
    trained_in, retrained_in = describe_environment(recorded), describe_environment(here)
    # 1. Byte for byte.
    if retrained_hash == registered_hash:
        return Reproduction(
            "identical",
            f"retraining gives the same model file, byte for byte (trained on {trained_in}; "
            f"retrained on {retrained_in})",
        )
    # 2. The same environment must give the same bytes.
    if recorded is not None and _same_environment(registered_metadata, retrained_metadata):
        return Reproduction(
            "different",
            f"retraining in the same numeric environment ({retrained_in}) gives "
            f"{to_hex(retrained_hash)}, not {to_hex(registered_hash)}",
        )
    # 3. Another environment: compare what the two models mean.
    try:
        registered = load_model(registered_bytes, registered_hash)
    except MlError as exc:
        return Reproduction("different", f"the registered model file cannot be loaded: {exc}")
    retrained = load_model(retrained_bytes, retrained_hash)
    requested = registered_metadata.get("requested_params") or {}
    tolerance = ALGORITHMS[retrained.algorithm].tolerance_for(requested)
    try:
        _same_request(registered_metadata, retrained_metadata, tolerance)
        parameters = _difference(registered.estimator, retrained.estimator, "model")
        X = dataset.numeric_array(retrained.features)
        outputs = _output_difference(registered, retrained, X, tolerance)
        # 4. A solver with a stopping tolerance: the registered model must be its solution.
        _check_solution(registered.estimator, registered_metadata, dataset)
    except _Mismatch as exc:
        return Reproduction(
            "different",
            f"retraining gives {to_hex(retrained_hash)}, not {to_hex(registered_hash)}, and "
            f"the two differ in meaning: {exc}",
        )
    if parameters > tolerance:
        return Reproduction(
            "different",
            f"retraining gives parameters that differ by {parameters:.3g} (relative), over the "
            f"tolerance {tolerance:g} of {retrained.algorithm}",
        )
    return Reproduction(
        "equivalent",
        f"equivalent within {tolerance:g} (relative): the fitted parameters differ by at most "
        f"{parameters:.2g}, the outputs for the dataset's {len(X):,} rows by at most "
        f"{outputs:.2g}, in another numeric environment (trained on {trained_in}; retrained on "
        f"{retrained_in}); the file hashes differ ({to_hex(retrained_hash)[:18]}…)",
    )


_WARM_SOLVERS = frozenset({"lbfgs", "newton-cg", "newton-cholesky", "sag", "saga"})
# How far the warm-started solver may move the registered coefficients (relative): none in
# practice, since it stops before its first step when they already meet its tolerance.
_SOLUTION_DRIFT = 1e-9


def _check_solution(registered: Any, metadata: Mapping[str, Any], dataset: Dataset) -> None:
    """For a warm-startable solver: refit from the registered coefficients; they must stay."""
    params = registered.get_params()
    if "warm_start" not in params or params.get("solver") not in _WARM_SOLVERS:
        return
    estimator = build_estimator(
        metadata["algorithm"],
        metadata.get("requested_params") or {},
        seed=metadata["split"]["seed"],
    )
    estimator.set_params(warm_start=True)
    estimator.coef_ = registered.coef_.copy()
    estimator.intercept_ = registered.intercept_.copy()
    X_train, y_train = training_rows(dataset, metadata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(X_train, y_train)
    moved = _array_difference(estimator.coef_, registered.coef_, "coefficients")
    if moved > _SOLUTION_DRIFT:
        raise _Mismatch(
            f"the registered coefficients are not a solution of the recorded training: "
            f"{params.get('solver')} started from them moves them by {moved:.3g} (relative)"
        )


def _same_environment(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return all(_canonical(a.get(key)) == _canonical(b.get(key)) for key in _ENVIRONMENT_KEYS)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _same_request(
    registered: Mapping[str, Any], retrained: Mapping[str, Any], tolerance: float
) -> None:
    """The two metadata documents describe the same training (numbers within tolerance)."""
    keys = (set(registered) | set(retrained)) - set(_ENVIRONMENT_KEYS) - set(_NUMERIC_KEYS)
    for key in sorted(keys):
        if _canonical(registered.get(key)) != _canonical(retrained.get(key)):
            raise _Mismatch(
                f"the training metadata's {key!r} is {registered.get(key)!r} when registered "
                f"and {retrained.get(key)!r} when retrained"
            )
    for key in _NUMERIC_KEYS:
        a, b = registered.get(key) or {}, retrained.get(key) or {}
        if set(a) != set(b):
            raise _Mismatch(f"the metadata's {key} name {sorted(a)} and {sorted(b)}")
        for name in sorted(a):
            if not _numbers_close(a[name], b[name], tolerance):
                raise _Mismatch(f"{key}.{name} is {a[name]!r} when registered, {b[name]!r} now")


def _numbers_close(a: Any, b: Any, tolerance: float) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=tolerance, abs_tol=tolerance)


def _difference(a: Any, b: Any, path: str) -> float:
    """The largest relative difference between two fitted values; raises :class:`_Mismatch`
    where their structure, types or exactly-compared values differ."""
    if type(a) is not type(b) and not (_is_number(a) and _is_number(b)):
        raise _Mismatch(f"{path} is a {type(a).__name__} in one and a {type(b).__name__}")
    if isinstance(a, BaseEstimator):
        return _difference(_fitted(a), _fitted(b), path)
    if isinstance(a, Tree):
        return _difference(a.__getstate__(), b.__getstate__(), path)
    if isinstance(a, Mapping):
        if set(a) != set(b):
            raise _Mismatch(f"{path} has fields {sorted(a)} in one and {sorted(b)} in the other")
        return max((_difference(a[k], b[k], f"{path}.{k}") for k in sorted(a)), default=0.0)
    if isinstance(a, list | tuple):
        if len(a) != len(b):
            raise _Mismatch(f"{path} has {len(a)} items in one and {len(b)} in the other")
        return max(
            (_difference(x, y, f"{path}[{i}]") for i, (x, y) in enumerate(zip(a, b, strict=True))),
            default=0.0,
        )
    if isinstance(a, np.ndarray):
        return _array_difference(a, b, path)
    if isinstance(a, float | np.floating):
        return _array_difference(np.asarray([a]), np.asarray([b]), path)
    if _canonical_scalar(a) != _canonical_scalar(b):
        raise _Mismatch(f"{path} is {a!r} in one and {b!r} in the other")
    return 0.0


# Learned attributes that count an optimizer's steps: an iterative solver (lbfgs) may stop a
# step earlier or later in another environment at a solution within its own tolerance, which
# the parameters and outputs are then compared against.
_STEP_COUNTS = frozenset({"n_iter_"})


def _fitted(estimator: BaseEstimator) -> dict[str, Any]:
    """A fitted estimator's learned attributes (scikit-learn's ``name_`` convention)."""
    return {
        k: v
        for k, v in vars(estimator).items()
        if k.endswith("_") and not k.startswith("_") and k not in _STEP_COUNTS
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def _canonical_scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _array_difference(a: np.ndarray, b: np.ndarray, path: str) -> float:
    if a.shape != b.shape:
        raise _Mismatch(f"{path} has shape {a.shape} in one and {b.shape} in the other")
    if a.dtype.names is not None:  # a tree's node table: compare field by field
        if a.dtype.names != b.dtype.names:
            raise _Mismatch(f"{path} has fields {a.dtype.names} and {b.dtype.names}")
        return max((_array_difference(a[n], b[n], f"{path}.{n}") for n in a.dtype.names), default=0)
    if a.dtype.kind == "O" or b.dtype.kind == "O":
        return _difference(a.tolist(), b.tolist(), path)
    if a.dtype.kind not in "fc" and b.dtype.kind not in "fc":
        if not np.array_equal(a, b):
            raise _Mismatch(f"{path} differs in its exact values")
        return 0.0
    x, y = a.astype(np.float64), b.astype(np.float64)
    if not np.array_equal(np.isnan(x), np.isnan(y)) or not np.array_equal(
        np.isinf(x) & (x > 0), np.isinf(y) & (y > 0)
    ):
        raise _Mismatch(f"{path} has NaN or infinite values in other places")
    finite = np.isfinite(x)
    if not finite.any():
        return 0.0
    scale = max(float(np.max(np.abs(y[finite]))), float(np.finfo(np.float64).tiny))
    return float(np.max(np.abs(x[finite] - y[finite]))) / scale


def _output_difference(registered: Any, retrained: Any, X: np.ndarray, tolerance: float) -> float:
    """The largest relative difference between the two models' outputs on ``X``; labels must
    agree wherever the registered model is not within ``tolerance`` of a tie."""
    if registered.task == "regression":
        a = registered.estimator.predict(X)
        b = retrained.estimator.predict(X)
        difference = _array_difference(a, b, "predictions")
        if difference > tolerance:
            raise _Mismatch(f"predictions differ by {difference:.3g} (relative)")
        return difference
    a = registered.estimator.predict_proba(X)
    b = retrained.estimator.predict_proba(X)
    difference = _array_difference(a, b, "class probabilities")
    if difference > tolerance:
        raise _Mismatch(f"class probabilities differ by {difference:.3g}")
    ordered = np.sort(a, axis=1)
    clear = ordered[:, -1] - ordered[:, -2] > 2 * tolerance if a.shape[1] > 1 else True
    labels_a = registered.estimator.predict(X)
    labels_b = retrained.estimator.predict(X)
    disagree = (labels_a != labels_b) & clear
    if np.any(disagree):
        row = int(np.flatnonzero(disagree)[0])
        raise _Mismatch(f"row {row} is labelled {labels_a[row]!r} by one and {labels_b[row]!r}")
    return difference

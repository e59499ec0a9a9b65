"""Deterministic training: dataset + algorithm + hyperparameters → model file + metadata.

Why it runs past 400 lines: training, the metadata document and retraining from it are one
format (the metadata names exactly what retraining reads; see "Retraining" below). The memory
estimate lives in :mod:`ml.training_memory`, the metrics in :mod:`ml._metrics`.

Why everything here is pinned down: DESIGN.md promises that the same inputs give the same
model hash, so an auditor can retrain and compare. Concretely:

* **Randomness** comes only from ``seed``: it is the ``random_state`` of the split
  (:func:`sklearn.model_selection.train_test_split`, shuffled, not stratified) and of every
  estimator that takes one. Callers cannot set ``random_state``, ``n_jobs`` or ``verbose``.
* **Threads**: fitting runs with BLAS/OpenMP pinned to one thread (threadpoolctl, for the
  rest of the process: :mod:`ml._threads` says why), so the floating-point summation order
  does not depend on the machine's core count.
* **Hyperparameters** are JSON values (numbers, strings, booleans, null, arrays; arrays
  become tuples). Unknown names raise :class:`~ml.errors.UnknownParameter`; values that
  scikit-learn's own constraint check (``_validate_params``) or ``fit`` rejects raise
  :class:`~ml.errors.InvalidParameter`; a boolean is refused where the estimator expects a
  number.
* **Model hash** = SHA-256 of the model file, which :mod:`ml._modelfile` writes byte-stably
  (canonical skops archive: renumbered ids, fixed names, order and timestamps, no
  compression). So ``model_hash == sha256(model_bytes)`` and the artifact store (file named by
  its hash) and the chain agree.
* **Metadata** is canonical JSON (:func:`ml.hashing.canonical_json`, floats by ``repr``,
  NaN written as ``null``): format, algorithm, task, estimator class, dataset hashes
  (``0x`` hex), every effective estimator parameter, features, target, classes, split
  (seed, test_size, row counts), ``evaluated_on`` (``"test"``, or ``"train"`` when
  ``test_size`` is 0), metrics, fit warnings, and the versions of Python, scikit-learn,
  numpy, scipy and skops. It does not contain the model hash (that is recorded beside it on
  chain), so nothing is circular.

Metrics: regression ``r2``, ``mse``, ``mae``; classification ``accuracy``, ``f1`` (binary:
positive class = the second of the sorted classes; multiclass: macro average, see
``f1_average``) and, for binary problems, ``roc_auc`` from ``predict_proba``. A metric that is
undefined on the evaluation rows (R² of one row, AUC of one class) is ``null``.

Retraining (:func:`retrain`) reads the request back out of a metadata document, with the keys
written here and nowhere else, so an auditor's retrain and the service's cannot disagree on
what the document means: the document's writer, its reader and the helpers that define its
values stay in one place.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import InvalidParameterError

from ml._algorithms import ALGORITHMS, Algorithm, Task
from ml._metrics import evaluate
from ml._modelfile import ModelHeader, write_model_file
from ml._threads import pin_one_thread
from ml.datasets import Dataset, Value, validate_columns
from ml.environment import library_versions, numeric_environment
from ml.errors import (
    InvalidMetadata,
    InvalidParameter,
    InvalidSplit,
    InvalidTarget,
    TrainingFailed,
    UnknownAlgorithm,
    UnknownParameter,
)
from ml.hashing import canonical_json, from_hex, sha256_bytes, to_hex

__all__ = [
    "ALGORITHMS",
    "METADATA_FORMAT",
    "SERVICE_PARAMS",
    "Algorithm",
    "Task",
    "TrainedModel",
    "build_estimator",
    "library_versions",
    "retrain",
    "train",
    "training_request",
    "training_rows",
]

METADATA_FORMAT = "provenance-ledger/training-metadata"
# 2 adds "environment" (ml/environment.py). A version-1 document (no environment) is retrained
# into a version-1 document, so that models registered before keep their metadata hash.
METADATA_FORMAT_VERSION = 2
METADATA_FORMAT_VERSIONS = (1, 2)
# Set by the service, never by a caller (see the module docstring).
SERVICE_PARAMS: tuple[str, ...] = ("random_state", "n_jobs", "verbose")
MAX_SEED = 2**32 - 1  # numpy's RandomState accepts seeds in [0, 2**32)
_FLOAT_MAX = float(np.finfo(np.float64).max)


@dataclass(frozen=True)
class TrainedModel:
    """The result of :func:`train`: the model file, its metadata document and their hashes.

    ``metadata_bytes`` is the authoritative document; :attr:`metadata` is its parsed copy.
    ``estimator`` is the fitted scikit-learn object, for callers that predict right away.
    """

    algorithm: str
    task: Task
    features: tuple[str, ...]
    target: str
    model_bytes: bytes = field(repr=False)
    model_hash: bytes
    metadata_bytes: bytes = field(repr=False)
    metadata_hash: bytes
    metrics: Mapping[str, float | None]
    dataset_hashes: tuple[bytes, ...]
    estimator: Any = field(repr=False, compare=False)

    def __repr__(self) -> str:
        return (
            f"TrainedModel({self.algorithm}, model=sha256:{self.model_hash.hex()}, "
            f"metadata=sha256:{self.metadata_hash.hex()}, metrics={dict(self.metrics)})"
        )

    @property
    def metadata(self) -> dict[str, Any]:
        """The metadata document, parsed (a fresh copy each time)."""
        return json.loads(self.metadata_bytes)


def build_estimator(
    algorithm: str, params: Mapping[str, Any] | None = None, *, seed: int = 0
) -> Any:
    """An unfitted estimator with ``params`` checked and the service parameters forced.

    Exposed so callers (and tests) can build exactly the estimator :func:`train` fits.
    """
    algo = _algorithm(algorithm)
    _check_seed(seed)
    if params is not None and not isinstance(params, Mapping):
        raise InvalidParameter("params", f"must be an object of name: value, got {params!r}")
    estimator = algo.estimator()
    known = estimator.get_params(deep=False)
    algo.check_caps(params or {})
    converted: dict[str, Any] = {}
    for name, value in (params or {}).items():
        if not isinstance(name, str) or name not in known:
            raise UnknownParameter(str(name), algorithm=algorithm, known=sorted(known))
        if name in SERVICE_PARAMS:
            raise InvalidParameter(
                name,
                "set by the service (random_state comes from the seed; n_jobs and verbose "
                "do not change the model)",
            )
        converted[name] = _convert_value(name, value, _constraints(estimator, name))
    forced = {"random_state": seed, "n_jobs": None, "verbose": 0}
    converted.update({name: value for name, value in forced.items() if name in known})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notices are re-raised at fit time
        estimator.set_params(**converted)
    try:
        estimator._validate_params()
    except InvalidParameterError as exc:
        name = _mentioned(str(exc), converted) or "params"
        raise InvalidParameter(name, str(exc)) from None
    return estimator


def train(
    dataset: Dataset,
    *,
    algorithm: str,
    target: str,
    features: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    test_size: float = 0.2,
    seed: int = 0,
    metadata_version: int = METADATA_FORMAT_VERSION,
) -> TrainedModel:
    """Train ``algorithm`` on ``dataset`` deterministically and package the result.

    ``features=None`` uses every column but the target. ``test_size`` is the held-out
    fraction in ``[0, 1)``; 0 trains on every row and evaluates on the training rows (the
    metadata then says ``"evaluated_on": "train"``). ``metadata_version`` is for
    :func:`retrain` only: it writes an old document in its own format.
    """
    # 1. Request: algorithm, columns, target, split and parameters.
    algo = _algorithm(algorithm)
    chosen = validate_columns(dataset, target, features)
    test_fraction = _check_test_size(test_size)
    estimator = build_estimator(algorithm, params, seed=seed)
    user_params = set(params or {})

    # 2. Arrays.
    X_train, X_test, y_train, y_test = _split(dataset, algo, chosen, target, test_fraction, seed)
    if algo.task == "classification" and len(np.unique(y_train)) < 2:
        raise InvalidTarget(
            f"the training rows hold only one class of {target!r}; a classifier needs two "
            "(use more rows, another seed, or test_size=0)"
        )

    # 3. Fit, single-threaded, recording warnings (they are part of the metadata).
    pin_one_thread()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimator.fit(X_train, y_train)
        except (ValueError, TypeError, OverflowError, FloatingPointError, ZeroDivisionError) as exc:
            name = _mentioned(str(exc), user_params)
            if name is not None:
                raise InvalidParameter(name, str(exc)) from None
            raise TrainingFailed(f"{algorithm} could not be trained: {exc}") from None
    fit_warnings = sorted({f"{w.category.__name__}: {w.message}" for w in caught})

    # 4. Metrics on the held-out rows (or the training rows when test_size is 0).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics, f1_average = evaluate(estimator, algo.task, X_test, y_test)

    # 5. Model file and metadata.
    header = ModelHeader(
        algorithm=algorithm,
        task=algo.task,
        estimator=algo.estimator_name,
        features=chosen,
        target=target,
    )
    model_bytes = write_model_file(estimator, header)
    metadata: dict[str, Any] = {
        "format": METADATA_FORMAT,
        "format_version": metadata_version,
        "algorithm": algorithm,
        "task": algo.task,
        "estimator": algo.estimator_name,
        "datasets": [
            {
                "content_hash": to_hex(dataset.content_hash),
                "schema_hash": to_hex(dataset.schema_hash),
                "row_count": dataset.row_count,
            }
        ],
        "params": _jsonable(estimator.get_params(deep=False)),
        # What the caller asked for: retraining with exactly these reproduces the model.
        "requested_params": _jsonable(dict(params or {})),
        "features": list(chosen),
        "target": target,
        "split": {
            "method": "sklearn.model_selection.train_test_split",
            "shuffle": test_fraction > 0,
            "stratify": False,
            "seed": seed,
            "test_size": test_fraction,
            "train_rows": len(y_train),
            "test_rows": len(y_test) if test_fraction > 0 else 0,
        },
        "evaluated_on": "test" if test_fraction > 0 else "train",
        "metrics": dict(metrics),
        "warnings": fit_warnings,
        "versions": library_versions(),
    }
    if metadata_version >= 2:
        metadata["environment"] = numeric_environment()
    if algo.task == "classification":
        metadata["classes"] = _jsonable(list(estimator.classes_))
        metadata["f1_average"] = f1_average
    metadata_bytes = canonical_json(metadata)
    return TrainedModel(
        algorithm=algorithm,
        task=algo.task,
        features=chosen,
        target=target,
        model_bytes=model_bytes,
        model_hash=sha256_bytes(model_bytes),
        metadata_bytes=metadata_bytes,
        metadata_hash=sha256_bytes(metadata_bytes),
        metrics=metrics,
        dataset_hashes=(dataset.content_hash,),
        estimator=estimator,
    )


def retrain(dataset: Dataset, metadata: Mapping[str, Any]) -> TrainedModel:
    """Train again exactly as the model behind ``metadata`` was trained, on ``dataset``.

    Reads the request that :func:`train` recorded: ``algorithm``, ``target``, ``features``,
    ``requested_params`` (the caller's parameters, not the effective ones, which would pin
    one scikit-learn's defaults) and the split's ``seed`` and ``test_size``. A document
    written before ``requested_params`` was recorded retrains with no parameters, as the
    service always did. The new document has the original's format version. In the same
    numeric environment (:mod:`ml.environment`), the model hash and metadata hash are the
    original's; elsewhere :func:`ml.reproduce.judge_retrain` says whether they are equivalent.

    Raises:
        InvalidMetadata: ``metadata`` is not a training-metadata document of this version,
            lacks one of those keys, or names another dataset than ``dataset``.
        TrainingError: training refuses the recorded request (as :func:`train` would).
    """
    if (
        not isinstance(metadata, Mapping)
        or metadata.get("format") != METADATA_FORMAT
        or metadata.get("format_version") not in METADATA_FORMAT_VERSIONS
    ):
        raise InvalidMetadata(
            f"not a training-metadata document ({METADATA_FORMAT} "
            f"v{' or v'.join(map(str, METADATA_FORMAT_VERSIONS))})"
        )
    trained_on = _recorded(metadata, "datasets", 0, "content_hash")
    if _digest_or_none(trained_on) != dataset.content_hash:
        raise InvalidMetadata(
            f"the model was trained on dataset {trained_on}, not {to_hex(dataset.content_hash)}"
        )
    return train(
        dataset,
        algorithm=_recorded(metadata, "algorithm"),
        target=_recorded(metadata, "target"),
        features=_recorded(metadata, "features"),
        params=metadata.get("requested_params") or {},
        test_size=_recorded(metadata, "split", "test_size"),
        seed=_recorded(metadata, "split", "seed"),
        metadata_version=metadata["format_version"],
    )


def training_rows(dataset: Dataset, metadata: Mapping[str, Any]) -> tuple[Any, Any]:
    """The training part of the split a metadata document records: ``(X_train, y_train)``,
    as :func:`train` fitted on them (for a check that refits from a registered model)."""
    algo = _algorithm(_recorded(metadata, "algorithm"))
    target = _recorded(metadata, "target")
    features = validate_columns(dataset, target, _recorded(metadata, "features"))
    test_size = _check_test_size(_recorded(metadata, "split", "test_size"))
    seed = _recorded(metadata, "split", "seed")
    X_train, _, y_train, _ = _split(dataset, algo, features, target, test_size, seed)
    return X_train, y_train


def _split(
    dataset: Dataset,
    algo: Algorithm,
    features: Sequence[str],
    target: str,
    test_fraction: float,
    seed: int,
) -> tuple[Any, Any, Any, Any]:
    """``X_train, X_test, y_train, y_test``: shuffled by ``seed``; with no test part, the
    training rows are also the evaluation rows."""
    X = dataset.numeric_array(features)
    y = _target_array(dataset, target, algo)
    if test_fraction == 0.0:
        return X, X, y, y
    try:
        return tuple(
            train_test_split(X, y, test_size=test_fraction, random_state=seed, shuffle=True)
        )
    except ValueError as exc:
        raise InvalidSplit(
            f"cannot hold out test_size={test_fraction} of {len(y)} rows: {exc}"
        ) from None


def training_request(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """What a training was asked for, from its metadata document: datasets, algorithm,
    parameters, features, target, split seed and size. Two trainings with equal requests
    are the same training (whatever machine ran them); see :func:`retrain` for the keys."""
    split = metadata.get("split") or {}
    return {
        "datasets": [d.get("content_hash") for d in metadata.get("datasets") or []],
        "algorithm": metadata.get("algorithm"),
        "requested_params": metadata.get("requested_params") or {},
        "features": metadata.get("features"),
        "target": metadata.get("target"),
        "seed": split.get("seed"),
        "test_size": split.get("test_size"),
    }


def _recorded(document: Mapping[str, Any], *path: str | int) -> Any:
    """The value at ``path`` in a metadata document (its type is :func:`train`'s to check)."""
    value: Any = document
    for step in path:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            where = ".".join(map(str, path))
            raise InvalidMetadata(f"the training metadata has no {where}") from None
    return value


def _digest_or_none(text: Any) -> bytes | None:
    try:
        return from_hex(text) if isinstance(text, str) else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- helpers


def _algorithm(name: str) -> Algorithm:
    try:
        return ALGORITHMS[name]
    except (KeyError, TypeError):
        raise UnknownAlgorithm(str(name), list(ALGORITHMS)) from None


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InvalidParameter("seed", f"must be an integer in [0, {MAX_SEED}], got {seed!r}")


def _check_test_size(test_size: Any) -> float:
    if (
        isinstance(test_size, bool)
        or not isinstance(test_size, int | float)
        or not math.isfinite(test_size)
        or not 0 <= test_size < 1
    ):
        raise InvalidSplit(f"test_size must be a number in [0, 1), got {test_size!r}")
    return float(test_size)


def _constraints(estimator: Any, name: str) -> list[Any]:
    return list(getattr(estimator, "_parameter_constraints", {}).get(name, []))


def _convert_value(name: str, value: Any, constraints: list[Any]) -> Any:
    """Accept JSON values only; arrays become tuples; booleans only where booleans fit."""
    if isinstance(value, bool):
        takes_bool = any(
            c in ("boolean", "verbose", "no_validation") or c is bool for c in constraints
        )
        if not takes_bool:
            raise InvalidParameter(name, f"expects a number or string, not the boolean {value}")
        return value
    if isinstance(value, int) and abs(value) > _FLOAT_MAX:
        raise InvalidParameter(name, f"an integer of {value.bit_length()} bits is beyond float64")
    if value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidParameter(name, f"must be finite, got {value!r}")
        return value
    if isinstance(value, list | tuple):
        return tuple(_convert_value(name, item, []) for item in value)
    raise InvalidParameter(
        name, f"must be a number, string, boolean, null or array, got {type(value).__name__}"
    )


def _mentioned(message: str, names: Any) -> str | None:
    """The first parameter name quoted or named in an error message, if any."""
    for name in sorted(names, key=len, reverse=True):
        if f"'{name}'" in message or f"{name}=" in message or f" {name} " in f" {message} ":
            return name
    return None


def _target_array(dataset: Dataset, target: str, algo: Algorithm) -> np.ndarray:
    kind = dataset.column(target).type
    values: Sequence[Value] = dataset.values(target)
    if algo.task == "regression":
        if kind not in ("integer", "float"):
            raise InvalidTarget(
                f"{algo.name} is a regression algorithm and needs a numeric target; "
                f"{target!r} is a {kind} column"
            )
        return np.asarray(values, dtype=np.float64)
    if kind == "float":
        raise InvalidTarget(
            f"{algo.name} is a classifier and needs class labels (integer, string or boolean); "
            f"{target!r} is a float column: use a regression algorithm"
        )
    dtype = {"integer": np.int64, "boolean": np.bool_, "string": np.str_}[kind]
    array = np.asarray(values, dtype=dtype)
    if len(np.unique(array)) < 2:
        raise InvalidTarget(f"{target!r} has a single class; a classifier needs at least two")
    return array


def _jsonable(value: Any) -> Any:
    """Convert estimator parameters and labels to plain JSON values (numpy → Python)."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot record {value!r} in the metadata")  # a bug, not user input

"""Load a model file safely and predict with it.

Why the order of checks matters: a model file comes from the artifact store, which an
attacker might have written to. So, before anything is built from it:

1. the SHA-256 of the bytes must equal the hash the caller expects (the one on chain);
2. the archive must be a model file written by :mod:`ml.training` (header, schema, stored
   entries only);
3. every ``module.Class`` named in the skops schema must be in the trusted list of the
   header's algorithm, and every skops node kind must be a plain data kind (no functions,
   methods, ``functools.partial`` or operator nodes), otherwise
   :class:`~ml.errors.UntrustedModelContent`;
4. only then does skops construct the estimator, with that same explicit trusted list, and
   the result must be an instance of the algorithm's estimator class.

No pickle is involved anywhere: skops reads arrays with ``allow_pickle=False``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import skops.io

from ml._algorithms import ALGORITHMS, Task
from ml._modelfile import read_model_file
from ml._threads import pin_one_thread
from ml.datasets import Value
from ml.errors import (
    InvalidInput,
    InvalidModelFile,
    MissingFeature,
    ModelHashMismatch,
    NonNumericInput,
    UnknownFeature,
    UntrustedModelContent,
)
from ml.hashing import from_hex, sha256_bytes

__all__ = ["LoadedModel", "Predictions", "load_model"]

# skops node kinds that only rebuild data and vetted classes.
_TRUSTED_LOADERS = frozenset(
    {
        "CachedNode",
        "DictNode",
        "DTypeNode",
        "JsonNode",
        "ListNode",
        "LossNode",
        "NdArrayNode",
        "ObjectNode",
        "RandomStateNode",
        "TreeNode",
        "TupleNode",
        "TypeNode",
    }
)


@dataclass(frozen=True)
class Predictions:
    """Model outputs for a batch of input rows, in input order.

    ``values`` are predicted numbers (regression) or class labels (classification).
    For classifiers, ``probabilities[i][k]`` is the probability of ``classes[k]`` for row i.
    """

    values: tuple[Value, ...]
    classes: tuple[Value, ...] | None = None
    probabilities: tuple[tuple[float, ...], ...] | None = None

    def class_probabilities(self) -> list[dict[str, float]] | None:
        """Per row, ``{str(class): probability}`` in :attr:`classes` order; None without them.

        Keys are strings because a JSON object's are: an integer or boolean class ``1`` or
        ``True`` becomes ``"1"`` or ``"True"`` (Python's ``str``, as receipts have always had).
        """
        if self.probabilities is None or self.classes is None:
            return None
        labels = [str(label) for label in self.classes]
        return [dict(zip(labels, row, strict=True)) for row in self.probabilities]

    def receipt_outputs(self) -> list[Any]:
        """Per row, the value a prediction receipt's ``output`` carries (and hashes).

        A classifier with probabilities gives ``{"label": value, "probabilities":
        {str(class): p}}``; anything else the bare value. This is the one definition of that
        shape: a receipt is issued with it and a re-run is compared with it, so the two can
        never drift apart.
        """
        probabilities = self.class_probabilities()
        if probabilities is None:
            return list(self.values)
        return [
            {"label": value, "probabilities": row}
            for value, row in zip(self.values, probabilities, strict=True)
        ]


@dataclass(frozen=True)
class LoadedModel:
    """A verified, loaded model and what it needs as input."""

    model_hash: bytes
    algorithm: str
    task: Task
    features: tuple[str, ...]
    target: str
    classes: tuple[Value, ...] | None
    estimator: Any = field(repr=False, compare=False)

    def __repr__(self) -> str:
        return (
            f"LoadedModel({self.algorithm}, sha256:{self.model_hash.hex()}, "
            f"features={list(self.features)}, target={self.target!r})"
        )

    def predict(self, rows: Sequence[Mapping[str, Any]]) -> Predictions:
        """Predict one output per input row; each row maps feature name → number.

        A name that is not a feature is refused (:class:`~ml.errors.UnknownFeature`): a value
        the model silently ignores is a prediction the client did not ask for. Booleans count
        as 0/1, like boolean dataset columns.
        """
        X = self._matrix(rows)
        pin_one_thread()
        raw = self.estimator.predict(X)
        # a float array's tolist() gives the Python floats _plain would, in one C call
        values = (
            tuple(raw.tolist())
            if isinstance(raw, np.ndarray) and raw.dtype.kind == "f"
            else tuple(_plain(v) for v in raw)
        )
        if self.task == "regression":
            return Predictions(values=values)
        probabilities = self.estimator.predict_proba(X)
        return Predictions(
            values=values,
            classes=self.classes,
            probabilities=tuple(tuple(float(p) for p in row) for row in probabilities),
        )

    def _matrix(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        if isinstance(rows, Mapping | str | bytes) or not isinstance(rows, Sequence) or not rows:
            raise InvalidInput("predict needs a non-empty list of rows (objects)")
        X = self._float_matrix(rows)
        if X is not None:
            return X
        # Any other input, value by value: what it accepts the same, and the precise error.
        X = np.empty((len(rows), len(self.features)), dtype=np.float64)
        for r, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise InvalidInput(f"input row {r} is a {type(row).__name__}, not an object")
            if len(row) > len(self.features):  # a name the model does not take: say which
                extra = next(k for k in row if k not in self._feature_set)
                raise UnknownFeature(str(extra), row=r, features=self.features)
            for c, name in enumerate(self.features):
                if name not in row:
                    raise MissingFeature(name, row=r)
                value = row[name]
                # NaN and infinities are not numbers here; an integer of any size is compared
                # with the bound exactly (``math.isfinite`` or ``float`` would overflow on it).
                finite = isinstance(value, float) and math.isfinite(value)
                if not (isinstance(value, int) or finite):  # booleans are ints: 0 and 1
                    raise NonNumericInput(name, row=r, value=value)
                if abs(value) > _FLOAT32_MAX:
                    raise InvalidInput(
                        f"input row {r}: {name} = {_shown(value)} is beyond " + self._input_range()
                    )
                X[r, c] = float(value)
        return X

    def _float_matrix(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
        """The input matrix of the usual request in a few C-level passes, or None for the
        value-by-value path: every row a ``dict`` with exactly the features as keys, every
        value a finite ``float`` within float32's range, so that the value-by-value path
        would accept it and write the same matrix (``tests/ml/test_ml_artifacts.py``)."""
        width, pick = len(self.features), self._pick
        try:
            if any(type(row) is not dict or len(row) != width for row in rows):
                return None
            values = [pick(row) for row in rows]  # KeyError: a feature is missing
        except KeyError:
            return None
        if width == 1:
            values = [(value,) for value in values]  # itemgetter of one key gives the value
        if set(map(type, chain.from_iterable(values))) != _FLOATS:
            return None  # ints, booleans, anything else: checked one by one
        X = np.array(values, dtype=np.float64).reshape(len(rows), width)
        if not np.isfinite(X).all() or np.abs(X).max() > _FLOAT32_MAX:
            return None
        return X

    @cached_property
    def _pick(self) -> Any:
        return itemgetter(*self.features)

    @cached_property
    def _feature_set(self) -> frozenset[str]:
        return frozenset(self.features)

    def _input_range(self) -> str:
        """The range predict inputs must lie in, and why, for this model's algorithm."""
        bound = f"±{_FLOAT32_MAX:.4g}"
        if _TREE_TYPE in ALGORITHMS[self.algorithm].trusted_types:
            return f"the float32 range ({bound}) that tree models compute in"
        # Linear and neural models compute in float64, yet a float64 input past float32 is
        # refused for them too: a product with a coefficient then overflows to an infinite or
        # NaN output, which no receipt can carry (canonical JSON has no form for it). One
        # bound, float32's, keeps every output finite for any sane model and is the same for
        # every algorithm, so a client's rows are valid or not whatever model they are sent to.
        return f"the range the service accepts for prediction inputs ({bound}, float32's)"


_FLOAT32_MAX = float(np.finfo(np.float32).max)
_FLOATS = {float}
# A model file holding scikit-learn trees (forests, gradient boosting): they compute in float32.
_TREE_TYPE = "sklearn.tree._tree.Tree"


def _shown(value: int | float) -> str:
    """A number as a message shows it: an integer too long to read (or for ``str``, past 4,300
    digits) by its size."""
    if isinstance(value, int) and abs(value) > 10**30:
        return f"{'-' if value < 0 else ''}an integer of {value.bit_length()} bits"
    return repr(value)


def load_model(model_bytes: bytes, expected_hash: bytes | str) -> LoadedModel:
    """Verify ``model_bytes`` against ``expected_hash`` and load it (see the module steps).

    ``expected_hash`` is 32 bytes, or hex with or without ``0x``.
    """
    # 1. Hash first: nothing else is read from unverified bytes.
    expected = from_hex(expected_hash) if isinstance(expected_hash, str) else expected_hash
    actual = sha256_bytes(model_bytes)
    if actual != expected:
        raise ModelHashMismatch(expected=bytes(expected), actual=actual)

    # 2. Structure and header.
    parsed = read_model_file(model_bytes)
    header = parsed.header
    algo = ALGORITHMS.get(header.algorithm)
    if algo is None or header.task != algo.task or header.estimator != algo.estimator_name:
        raise InvalidModelFile(
            f"the header names algorithm {header.algorithm!r} / {header.estimator!r}, "
            "which is not a supported algorithm and estimator pair"
        )

    # 3. Audit the schema against the allowlist before constructing anything.
    trusted = algo.trusted_types
    untrusted = sorted(parsed.types - trusted) + sorted(
        f"skops loader {loader}" for loader in parsed.loaders - _TRUSTED_LOADERS
    )
    if untrusted:
        raise UntrustedModelContent(untrusted, algorithm=algo.name)

    # 4. Construct with the same explicit list, then check what came out.
    try:
        estimator = skops.io.loads(model_bytes, trusted=sorted(trusted))
    except Exception as exc:  # skops raises many kinds; none may escape as a crash
        raise InvalidModelFile(f"skops could not load the model: {exc}") from None
    if type(estimator) is not algo.estimator:
        raise InvalidModelFile(
            f"the file holds a {type(estimator).__name__}, expected {algo.estimator.__name__}"
        )
    if getattr(estimator, "n_features_in_", len(header.features)) != len(header.features):
        raise InvalidModelFile("the estimator's feature count does not match its header")
    classes = None
    if algo.task == "classification":
        classes = tuple(_plain(label) for label in estimator.classes_)
    return LoadedModel(
        model_hash=actual,
        algorithm=algo.name,
        task=algo.task,
        features=header.features,
        target=header.target,
        classes=classes,
        estimator=estimator,
    )


def _plain(value: Any) -> Value:
    """numpy scalar → the Python value a JSON response can carry."""
    return value.item() if isinstance(value, np.generic) else value

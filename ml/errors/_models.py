"""Errors about training, model files and predictions (see :mod:`ml.errors`)."""

from __future__ import annotations

from collections.abc import Sequence

from ml.errors._base import MlError, _json_repr, _names

__all__ = [
    "ArtifactError",
    "InvalidInput",
    "InvalidMetadata",
    "InvalidModelFile",
    "InvalidParameter",
    "InvalidSplit",
    "MissingFeature",
    "ModelHashMismatch",
    "NonNumericInput",
    "ParameterCapExceeded",
    "PredictionError",
    "TrainingError",
    "TrainingFailed",
    "TrainingInterrupted",
    "TrainingLimitExceeded",
    "UnknownAlgorithm",
    "UnknownFeature",
    "UnknownParameter",
    "UntrustedModelContent",
]


# --------------------------------------------------------------------------- training


class TrainingError(MlError, ValueError):
    """A training request is invalid or training failed."""

    code = "training-error"


class UnknownAlgorithm(TrainingError):
    """The algorithm name is not one of :data:`ml.training.ALGORITHMS`."""

    code = "unknown-algorithm"

    def __init__(self, name: str, known: Sequence[str]) -> None:
        super().__init__(f"unknown algorithm {name!r}; choose one of {_names(known)}")
        self.name = name
        self.known = tuple(known)


class UnknownParameter(TrainingError):
    """A hyperparameter name the estimator does not have."""

    code = "unknown-parameter"

    def __init__(self, name: str, *, algorithm: str, known: Sequence[str]) -> None:
        super().__init__(
            f"{algorithm} has no parameter {name!r}; its parameters are {_names(known, 40)}"
        )
        self.name = name
        self.algorithm = algorithm
        self.known = tuple(known)


class InvalidParameter(TrainingError):
    """A hyperparameter value of the wrong type, out of range, or not settable."""

    code = "invalid-parameter"

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"invalid value for parameter {name!r}: {detail}")
        self.name = name
        self.detail = detail


class ParameterCapExceeded(InvalidParameter):
    """A hyperparameter asks for more work than its algorithm's cap allows
    (:data:`ml._algorithms.ALGORITHMS`: ``n_estimators``, ``max_iter``, layer sizes…)."""

    code = "parameter-cap"

    def __init__(self, name: str, *, algorithm: str, cap: int, value: object, what: str) -> None:
        shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:37]}..."
        InvalidParameter.__init__(
            self,
            name,
            f"{what} is {shown}, over the cap {cap:,} for {algorithm}; ask for at most {cap:,}",
        )
        self.algorithm = algorithm
        self.parameter = name
        self.cap = cap
        self.value = value


class TrainingLimitExceeded(TrainingError):
    """A training ran past its time or memory limit and its process was stopped.

    ``limit`` names the setting (``training_time_limit`` or ``max_memory_bytes``)."""

    code = "training-limit"

    def __init__(self, *, limit: str, maximum: float, detail: str) -> None:
        super().__init__(
            f"the training was stopped: {detail}, over the limit {limit}={maximum:,}; ask for "
            "less work (fewer iterations, trees or rows) or a larger limit"
        )
        self.limit = limit
        self.maximum = maximum


class TrainingInterrupted(TrainingError):
    """The training process ended without an answer: the service is stopping, or the process
    died (a crash, or the system's out-of-memory killer). Nothing was registered; the same
    request may be sent again."""

    code = "training-interrupted"


class InvalidSplit(TrainingError):
    """The train/test split cannot be made (bad test_size, too few rows)."""

    code = "invalid-split"


class TrainingFailed(TrainingError):
    """The estimator refused the data for a reason not tied to one parameter."""

    code = "training-failed"


class InvalidMetadata(TrainingError):
    """A training-metadata document cannot be retrained from (see :func:`ml.training.retrain`):
    not ours, a missing or ill-typed key, or it names another dataset than the one given."""

    code = "invalid-metadata"


# --------------------------------------------------------------------------- artifacts


class ArtifactError(MlError, ValueError):
    """A model file cannot be trusted or used."""

    code = "artifact-error"


class ModelHashMismatch(ArtifactError):
    """The model bytes do not hash to the expected value."""

    code = "model-hash-mismatch"

    def __init__(self, *, expected: bytes, actual: bytes) -> None:
        super().__init__(
            f"model file hash mismatch: expected sha256:{expected.hex()}, "
            f"got sha256:{actual.hex()}; the file was altered or is the wrong file"
        )
        self.expected = expected
        self.actual = actual


class InvalidModelFile(ArtifactError):
    """The bytes are not a model file written by :mod:`ml.training`."""

    code = "invalid-model-file"


class UntrustedModelContent(ArtifactError):
    """The model file references a type outside the allowlist for its algorithm."""

    code = "untrusted-model-content"

    def __init__(self, types: Sequence[str], *, algorithm: str) -> None:
        super().__init__(
            f"the model file for {algorithm} contains types outside the trusted list: "
            f"{_names(types)}; refusing to load it"
        )
        self.types = tuple(types)
        self.algorithm = algorithm


# --------------------------------------------------------------------------- prediction


class PredictionError(MlError, ValueError):
    """Input rows for a prediction are unusable."""

    code = "prediction-error"


class InvalidInput(PredictionError):
    """The input is not a non-empty list of objects."""

    code = "invalid-input"


class MissingFeature(PredictionError):
    """An input row lacks a feature the model needs."""

    code = "missing-feature"

    def __init__(self, feature: str, *, row: int) -> None:
        super().__init__(f"input row {row} has no value for feature {feature!r}")
        self.feature = feature
        self.row = row


class UnknownFeature(PredictionError):
    """An input row names a feature the model was not trained on."""

    code = "unknown-feature"

    def __init__(self, feature: str, *, row: int, features: Sequence[str]) -> None:
        super().__init__(
            f"input row {row} has {feature!r}, which is not a feature of this model; its "
            f"features are {_names(features)} (remove the others: a prediction uses exactly these)"
        )
        self.feature = feature
        self.row = row


class NonNumericInput(PredictionError):
    """An input value is not a finite number."""

    code = "non-numeric-input"

    def __init__(self, feature: str, *, row: int, value: object) -> None:
        super().__init__(
            f"input row {row} has {_json_repr(value)} for feature {feature!r}; a finite number "
            "is needed"
        )
        self.feature = feature
        self.row = row
        self.value = value

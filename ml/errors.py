"""Every failure the ``ml`` package reports, under one root: :class:`MlError`.

Why it runs past 400 lines: every error class of the package, each with its message and context
attributes, is in this one file, so that the stable codes are seen, and kept unique, together.

Why one hierarchy: the service layer turns these into RFC 9457 problem documents, so each
error carries a stable ``code`` (usable as the problem ``type`` suffix), a human ``message``
that says what was wrong *and* what to do, and the context values as attributes (a line
number, a limit, a column name). Errors about bad input also inherit :class:`ValueError`, so
generic callers that catch ``ValueError`` keep working.

Nothing in here knows about HTTP or chains; it is plain data about what went wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

__all__ = [
    "ArtifactError",
    "CanonicalJsonError",
    "ColumnError",
    "DatasetChanged",
    "DatasetError",
    "DuplicateColumns",
    "EmptyFile",
    "EmptyResult",
    "InvalidColumnName",
    "InvalidInput",
    "InvalidMetadata",
    "InvalidModelFile",
    "InvalidParameter",
    "InvalidSplit",
    "InvalidTarget",
    "InvalidTransform",
    "MalformedCsv",
    "MemoryLimitExceeded",
    "MissingFeature",
    "MissingValues",
    "MlError",
    "ModelHashMismatch",
    "NoHeader",
    "NoRows",
    "NonNumericColumn",
    "NonNumericInput",
    "ParameterCapExceeded",
    "PredictionError",
    "RaggedRow",
    "SpreadsheetFile",
    "TooLarge",
    "TrainingError",
    "TrainingFailed",
    "TrainingInterrupted",
    "TrainingLimitExceeded",
    "TransformError",
    "UndecodableText",
    "UnknownAlgorithm",
    "UnknownColumn",
    "UnknownFeature",
    "UnknownParameter",
    "UntrustedModelContent",
]


def _json_repr(value: object) -> str:
    """A value as the JSON a client sent it: ``null``, ``true``, ``"text"`` (not Python's
    ``None``, ``True``, ``'text'``)."""
    import json

    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _names(values: Iterable[str], limit: int = 12) -> str:
    """Quote a list of names for a message, eliding the tail of very long lists."""
    items = [repr(v) for v in values]
    if len(items) > limit:
        items = [*items[:limit], f"... ({len(items) - limit} more)"]
    return ", ".join(items)


class MlError(Exception):
    """Root of every error raised by ``ml``; ``message`` is meant for a human reader."""

    code: ClassVar[str] = "ml-error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class CanonicalJsonError(MlError, ValueError):
    """A value cannot be written as canonical JSON (NaN, infinity, a non-string key...).

    The one error for it in the project: :mod:`ml.hashing` raises it, and so do
    ``ledger.formats.receipts``' input and output hashes, which use the same encoder. Also raised
    for a malformed hex digest (:func:`ml.hashing.from_hex`).
    """

    code = "canonical-json"


# --------------------------------------------------------------------------- datasets


class DatasetError(MlError, ValueError):
    """A dataset file is not a valid dataset."""

    code = "invalid-dataset"


class EmptyFile(DatasetError):
    """The file has zero bytes."""

    code = "empty-file"

    def __init__(self) -> None:
        super().__init__("the dataset file is empty (0 bytes); upload a CSV with a header row")


class NoHeader(DatasetError):
    """The first line is not a header (blank, or it looks like data)."""

    code = "no-header"

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"the dataset has no header row: {reason}; the first line must name the columns"
        )
        self.reason = reason


class InvalidColumnName(DatasetError):
    """A header field is empty."""

    code = "invalid-column-name"

    def __init__(self, position: int) -> None:
        super().__init__(
            f"column {position} of the header has an empty name; every column needs a name"
        )
        self.position = position


class DuplicateColumns(DatasetError):
    """Two header fields have the same name."""

    code = "duplicate-columns"

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(
            f"the header repeats column name(s) {_names(names)}; column names must be unique"
        )
        self.names = tuple(names)


class RaggedRow(DatasetError):
    """A data row has a different number of fields from the header."""

    code = "ragged-row"

    def __init__(self, *, line: int, expected: int, actual: int, hint: str = "") -> None:
        detail = "is blank" if actual == 0 else f"has {actual} field(s)"
        super().__init__(
            f"line {line} {detail} but the header has {expected} column(s); "
            "every row needs one field per column (use an empty field for a missing value)"
            + (f"; {hint}" if hint else "")
        )
        self.line = line
        self.expected = expected
        self.actual = actual


class SpreadsheetFile(DatasetError):
    """The upload is a spreadsheet (Excel, OpenDocument), not a CSV file."""

    code = "spreadsheet"

    def __init__(self, kind: str) -> None:
        super().__init__(
            f"this is a spreadsheet ({kind}), not a CSV file: export it as CSV (in Excel or "
            "LibreOffice: Save As, 'CSV UTF-8, comma-separated') and upload that"
        )
        self.kind = kind


class UndecodableText(DatasetError):
    """The bytes are not valid UTF-8."""

    code = "undecodable-text"

    def __init__(self, *, line: int, offset: int) -> None:
        super().__init__(
            f"the file is not valid UTF-8: undecodable byte at offset {offset} (line {line}); "
            "save the file as UTF-8"
        )
        self.line = line
        self.offset = offset


class MalformedCsv(DatasetError):
    """The CSV syntax itself is broken (bad quoting, NUL byte...)."""

    code = "malformed-csv"

    def __init__(self, *, line: int, detail: str) -> None:
        super().__init__(f"line {line} is not valid CSV: {detail}")
        self.line = line
        self.detail = detail


class TooLarge(DatasetError):
    """A configured limit (bytes, rows, columns, cells, field length) was exceeded."""

    code = "too-large"

    def __init__(self, *, limit: str, maximum: int, actual: int | None = None) -> None:
        got = "more" if actual is None else str(actual)
        super().__init__(
            f"the dataset exceeds the limit {limit}={maximum} (got {got}); "
            "split the data or ask for a larger limit"
        )
        self.limit = limit
        self.maximum = maximum
        self.actual = actual


class MemoryLimitExceeded(TooLarge):
    """An operation that holds a dataset (or a per-row set) in memory would need more than the
    configured limit: refused before it starts, instead of letting the process run out."""

    code = "memory-limit"

    def __init__(self, *, operation: str, limit: str, maximum: int, estimate: int) -> None:
        DatasetError.__init__(
            self,
            f"{operation} needs an estimated {estimate:,} bytes of memory, over the limit "
            f"{limit}={maximum:,}; derive a smaller dataset (select_columns, filter_rows) or "
            "ask for a larger limit",
        )
        self.operation = operation
        self.limit = limit
        self.maximum = maximum
        self.actual = estimate
        self.estimate = estimate


class DatasetChanged(DatasetError):
    """The file changed between two reads of one scan (its hash or its shape differs)."""

    code = "dataset-changed"

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"the dataset file changed while it was being read ({detail}); upload it again"
        )
        self.detail = detail


class NoRows(DatasetError):
    """The file has a header and no data rows: nothing can be trained on it."""

    code = "no-rows"

    def __init__(self) -> None:
        super().__init__("the dataset has a header but no data rows; a model needs data")


# --------------------------------------------------------------------------- columns


class ColumnError(MlError, ValueError):
    """A named column cannot be used the way it was asked for."""

    code = "invalid-column"


class UnknownColumn(ColumnError):
    """A column name does not exist in the dataset."""

    code = "unknown-column"

    def __init__(self, column: str, available: Sequence[str]) -> None:
        super().__init__(f"column {column!r} does not exist; the dataset has {_names(available)}")
        self.column = column
        self.available = tuple(available)


class NonNumericColumn(ColumnError):
    """A column used as a numeric feature (or regression target) holds non-numbers."""

    code = "non-numeric-column"

    def __init__(
        self, column: str, *, kind: str, line: int | None = None, value: str | None = None
    ) -> None:
        where = f": line {line} has {value!r}" if line is not None else ""
        super().__init__(
            f"column {column!r} is a {kind} column but must be numeric{where}; "
            "missing values must be empty fields, and numbers use '.' as decimal point"
        )
        self.column = column
        self.kind = kind
        self.line = line
        self.value = value


class MissingValues(ColumnError):
    """A column needed for training has empty fields."""

    code = "missing-values"

    def __init__(self, column: str, *, line: int, count: int) -> None:
        super().__init__(
            f"column {column!r} has {count} missing value(s), the first on line {line}; "
            "derive a cleaned dataset with a drop_missing step first"
        )
        self.column = column
        self.line = line
        self.count = count


class InvalidTarget(ColumnError):
    """The target column does not suit the algorithm's task."""

    code = "invalid-target"


# --------------------------------------------------------------------------- transforms


class TransformError(MlError, ValueError):
    """A transform spec is invalid or cannot be applied."""

    code = "transform-error"


class InvalidTransform(TransformError):
    """The transform spec is malformed (unknown step, wrong type, bad value)."""

    code = "invalid-transform"

    def __init__(self, message: str, *, step: int | None = None) -> None:
        prefix = f"step {step}: " if step is not None else ""
        super().__init__(prefix + message)
        self.step = step


class EmptyResult(TransformError):
    """Applying the transform removed every row."""

    code = "empty-result"

    def __init__(self, *, step: int) -> None:
        super().__init__(
            f"step {step} removed every remaining row; a derived dataset needs at least one row"
        )
        self.step = step


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

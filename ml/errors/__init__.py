"""Every failure the ``ml`` package reports, under one root: :class:`MlError`.

Every error class of the package, each with its message and context attributes, is exported
here, so that the stable codes are seen, and kept unique, together; they live in three parts
(``_base``: the root; ``_data``: datasets, columns, cleaning; ``_models``: training, model
files, predictions) so that no file grows past what one reads at a sitting.

Why one hierarchy: the service layer turns these into RFC 9457 problem documents, so each
error carries a stable ``code`` (usable as the problem ``type`` suffix), a human ``message``
that says what was wrong *and* what to do, and the context values as attributes (a line
number, a limit, a column name). Errors about bad input also inherit :class:`ValueError`, so
generic callers that catch ``ValueError`` keep working.

Nothing in here knows about HTTP or chains; it is plain data about what went wrong.
"""

from __future__ import annotations

from ml.errors._base import (
    CanonicalJsonError,
    MlError,
)
from ml.errors._data import (
    ColumnError,
    DatasetChanged,
    DatasetError,
    DuplicateColumns,
    EmptyFile,
    EmptyResult,
    InvalidColumnName,
    InvalidTarget,
    InvalidTransform,
    MalformedCsv,
    MemoryLimitExceeded,
    MissingValues,
    NoHeader,
    NonNumericColumn,
    NoRows,
    RaggedRow,
    SpreadsheetFile,
    TooLarge,
    TransformError,
    UndecodableText,
    UnknownColumn,
)
from ml.errors._models import (
    ArtifactError,
    InvalidInput,
    InvalidMetadata,
    InvalidModelFile,
    InvalidParameter,
    InvalidSplit,
    MissingFeature,
    ModelHashMismatch,
    NonNumericInput,
    ParameterCapExceeded,
    PredictionError,
    TrainingError,
    TrainingFailed,
    TrainingInterrupted,
    TrainingLimitExceeded,
    UnknownAlgorithm,
    UnknownFeature,
    UnknownParameter,
    UntrustedModelContent,
)

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

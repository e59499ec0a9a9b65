"""Errors about datasets, their columns and their cleaning (see :mod:`ml.errors`)."""

from __future__ import annotations

from collections.abc import Sequence

from ml.errors._base import MlError, _names

__all__ = [
    "ColumnError",
    "DatasetChanged",
    "DatasetError",
    "DuplicateColumns",
    "EmptyFile",
    "EmptyResult",
    "InvalidColumnName",
    "InvalidTarget",
    "InvalidTransform",
    "MalformedCsv",
    "MemoryLimitExceeded",
    "MissingValues",
    "NoHeader",
    "NoRows",
    "NonNumericColumn",
    "RaggedRow",
    "SpreadsheetFile",
    "TooLarge",
    "TransformError",
    "UndecodableText",
    "UnknownColumn",
]


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

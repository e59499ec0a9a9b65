"""The service's own refusals: the few a flow makes that neither ``ledger`` nor ``ml`` defines.

Each derives from the root of the layer whose rule it enforces (``LedgerError`` for records and
receipts, ``MlError`` for data and limits), so callers outside HTTP catch them like any other
domain error, and ``api/problems.py`` maps every class to a problem type. The one exception is
:class:`AccessRefused`, which is about API keys and carries its 401/403 itself.
"""

from __future__ import annotations

from typing import Any

from ledger.errors import AlreadyRegistered, LedgerError, RecordIsRevoked, UnknownRecord
from ml.errors import MlError

__all__ = [
    "AccessRefused",
    "DerivationUnchanged",
    "FieldTooLong",
    "InputRequired",
    "InvalidStream",
    "LimitExceeded",
    "MalformedReadings",
    "Misconfigured",
    "ReadingNotSealed",
    "RecordTainted",
    "RowsRootMismatch",
    "StreamExists",
    "StreamVersionRows",
    "TrainedFromOtherInputs",
    "UnknownKey",
    "UnknownReceipt",
    "UnknownRow",
    "UnknownStream",
    "UnknownStreamReading",
    "VersionManifestBroken",
]


class AccessRefused(Exception):
    """A request without the key (``status`` 401) or the role (403) its route needs."""

    def __init__(self, status: int, slug: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.slug = status, slug


class UnknownReceipt(UnknownRecord):
    """No receipt with this id was issued by this service."""


class UnknownRow(UnknownRecord):
    """A row index outside the dataset."""


class UnknownKey(UnknownRecord):
    """No active API key has this id."""


class RecordTainted(RecordIsRevoked):
    """The record is not revoked itself, but something it was built from is."""


class RowsRootMismatch(LedgerError):
    """The stored file's rows root differs from the chain's: the store was tampered with."""


class Misconfigured(LedgerError):
    """The settings cannot open a service (e.g. chain=rpc without a keystore)."""


class TrainedFromOtherInputs(AlreadyRegistered):
    """Training produced a model file that is registered already from another training (other
    datasets, parameters or split). Answering with that record would show its lineage as this
    request's, so the answer names the registered training instead (``registered``)."""

    hint = (
        "the model file is the registered one, but its lineage names that training, not "
        "yours; to register a distinct model, train with another seed or test_size"
    )

    def __init__(self, model_hash: str, registered: dict[str, Any]) -> None:
        super().__init__(
            f"training gives model {model_hash}, which is registered already from another "
            f"training: {_training_summary(registered)}",
            model_hash=model_hash,
        )
        self.registered = registered


def _training_summary(request: dict[str, Any]) -> str:
    datasets = ", ".join(str(d) for d in request.get("datasets") or []) or "unknown data"
    return (
        f"{request.get('algorithm')} on {datasets} (params {request.get('requested_params')}, "
        f"seed {request.get('seed')}, test_size {request.get('test_size')}, "
        f"metrics {request.get('metrics')})"
    )


class DerivationUnchanged(MlError, ValueError):
    """The cleaning steps change nothing: the result would be the parent itself."""

    code = "derivation-unchanged"


class LimitExceeded(MlError, ValueError):
    """A request carries more than a size setting allows (rows to predict, for instance)."""

    code = "too-large"

    def __init__(self, detail: str, *, limit: str) -> None:
        super().__init__(detail)
        self.limit = limit


class FieldTooLong(MlError, ValueError):
    """A name or description is longer than its setting allows; nothing is ever cut."""

    code = "field-too-long"

    def __init__(self, field: str, length: int, *, limit: str, maximum: int) -> None:
        super().__init__(f"{field} has {length} characters, at most {maximum} ({limit})")
        self.limit = limit


class InputRequired(MlError, ValueError):
    """A re-run was asked for without the input row to run on."""

    code = "input-required"


class UnknownStream(UnknownRecord):
    """No stream has this name."""


class UnknownStreamReading(UnknownRecord):
    """The stream has no reading with this id."""


class StreamExists(AlreadyRegistered):
    """A stream of this name exists with another definition; a stream is defined once."""


class ReadingNotSealed(LedgerError):
    """The reading is stored (durable) but not in a version yet: no proof until its seal."""


class InvalidStream(MlError, ValueError):
    """A stream definition the service cannot keep (a column name, a type, a sealing rule)."""

    code = "invalid-stream"


class MalformedReadings(MlError, ValueError):
    """A request body that cannot be split into readings (a JSON array that does not parse,
    not UTF-8, or empty): nothing of it is stored."""

    code = "malformed-readings"


class VersionManifestBroken(LedgerError):
    """A stream version's manifests in the store do not hold together: the store was altered."""


class StreamVersionRows(MlError, ValueError):
    """A file operation (a row proof, a derivation) on a stream version, whose content is a
    manifest naming its chunks: the answer says what to do instead."""

    code = "stream-version-rows"

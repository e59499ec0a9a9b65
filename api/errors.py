"""The service's own refusals: the few a flow makes that neither ``ledger`` nor ``ml`` defines.

Each derives from the root of the layer whose rule it enforces (``LedgerError`` for records and
receipts, ``MlError`` for data and limits), so callers outside HTTP catch them like any other
domain error, and ``api/problems.py`` maps every class to a problem type. The one exception is
:class:`AccessRefused`, which is about API keys and carries its 401/403 itself.
"""

from __future__ import annotations

from ledger.errors import LedgerError, RecordRevoked, UnknownRecord
from ml.errors import MlError

__all__ = [
    "AccessRefused",
    "DerivationUnchanged",
    "FieldTooLong",
    "InputRequired",
    "LimitExceeded",
    "Misconfigured",
    "RecordTainted",
    "RowsRootMismatch",
    "UnknownKey",
    "UnknownReceipt",
    "UnknownRow",
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


class RecordTainted(RecordRevoked):
    """The record is not revoked itself, but something it was built from is."""


class RowsRootMismatch(LedgerError):
    """The stored file's rows root differs from the chain's: the store was tampered with."""


class Misconfigured(LedgerError):
    """The settings cannot open a service (e.g. chain=rpc without a keystore)."""


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

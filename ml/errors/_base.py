"""The root of ``ml``'s errors and the helpers their messages share (see :mod:`ml.errors`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

__all__ = ["CanonicalJsonError", "MlError"]


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

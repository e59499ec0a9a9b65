"""Writes, their inclusions and their errors as JSON, for the shared write queue
(:mod:`ledger.writes.shared`): a replica puts a write in PostgreSQL, the sender (another
process) reads it back, and the replica reads the outcome the sender wrote.

Every value here is a frozen dataclass of :mod:`ledger.records` or :mod:`ledger.writes._items`
(hashes as hex, tuples as lists) or a :class:`~ledger.errors.LedgerError` (its class's name,
message and context), so the JSON is small and the round trip exact.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ledger import errors as ledger_errors
from ledger import records
from ledger.errors import LedgerError, TransactionFailed
from ledger.writes._items import Included, RevokeInput, RoleInput, WriteInput

__all__ = [
    "error_from_json",
    "error_to_json",
    "included_from_json",
    "included_to_json",
    "item_from_json",
    "item_to_json",
]

_INPUTS: dict[str, type] = {
    t.__name__: t
    for t in (records.DatasetInput, records.ModelInput, records.AnchorInput, RevokeInput, RoleInput)
}
_EVENTS: dict[str, type] = {
    t.__name__: t
    for t in (
        records.DatasetRegistered,
        records.ModelRegistered,
        records.PredictionsAnchored,
        records.RecordRevoked,
        records.RoleChanged,
    )
}


def _fields(value: Any) -> dict[str, Any]:
    return {
        f.name: list(v) if isinstance(v := getattr(value, f.name), tuple) else v
        for f in dataclasses.fields(value)
    }


def _build(cls: type, fields: dict[str, Any]) -> Any:
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def item_to_json(item: WriteInput) -> str:
    """``item`` as JSON naming its type."""
    return json.dumps({"type": type(item).__name__, "fields": _fields(item)})


def item_from_json(text: str) -> WriteInput:
    """The write :func:`item_to_json` wrote."""
    document = json.loads(text)
    return _build(_INPUTS[document["type"]], document["fields"])


def included_to_json(included: Included) -> str:
    """An inclusion, its event included (``created`` is each request's own, not stored)."""
    event = included.event
    return json.dumps(
        {
            "event": None
            if event is None
            else {"type": type(event).__name__, "fields": _fields(event)},
            "timestamp": included.timestamp,
            "tx_hash": included.tx_hash,
            "block_number": included.block_number,
            "gas_used": included.gas_used,
        }
    )


def included_from_json(text: str, *, created: bool) -> Included:
    document = json.loads(text)
    event = document["event"]
    if event is not None:
        fields = event["fields"]
        if "kind" in fields:  # RecordRevoked's kind is an IntEnum
            fields["kind"] = records.RecordKind(fields["kind"])
        event = _build(_EVENTS[event["type"]], fields)
    return Included(
        event,
        document["timestamp"],
        document["tx_hash"],
        document["block_number"],
        document["gas_used"],
        created=created,
    )


def error_to_json(exc: LedgerError) -> str:
    """A write's error: its class (one of :mod:`ledger.errors`), message and context."""
    context = {k: v for k, v in exc.context.items() if isinstance(v, str | int | float | bool)}
    message = exc.args[0] if exc.args else ""  # str(exc) would add the hint a second time
    return json.dumps({"type": type(exc).__name__, "message": message, "context": context})


def error_from_json(text: str) -> LedgerError:
    """The error :func:`error_to_json` wrote, as its own class when :mod:`ledger.errors` has
    it (so the service answers it with the same problem type), else TransactionFailed."""
    document = json.loads(text)
    cls = getattr(ledger_errors, document["type"], None)
    if not (isinstance(cls, type) and issubclass(cls, LedgerError)):
        cls = TransactionFailed
    exc = cls.__new__(cls)
    LedgerError.__init__(exc, document["message"], **document["context"])
    if isinstance(exc, ledger_errors.FeeAboveCeiling):
        exc.ceiling = exc.context.get("ceiling")
    if isinstance(exc, ledger_errors.RecordPending):
        exc.waiting_for = exc.context.get("waiting_for")
    return exc

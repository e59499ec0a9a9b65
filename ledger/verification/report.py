"""A verification's outcome: named checks ``{name, ok, detail}`` and one verdict.

A check's ``ok`` is True (passed), False (failed) or None (not applicable, or waiting for
anchoring). The verdict is ``invalid`` if any check failed, ``pending`` if a receipt is sound
but not anchored yet, ``valid`` otherwise. Checks are frozen values, so the checks every receipt
of a batch shares (its batch, model and lineage) are built once and reused by each report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

__all__ = ["Check", "Checks", "Report", "Verdict"]

Verdict = Literal["valid", "invalid", "pending"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class Report:
    """The outcome of one verification."""

    subject: str
    kind: str
    checks: tuple[Check, ...]
    pending: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def verdict(self) -> Verdict:
        if any(c.ok is False for c in self.checks):
            return "invalid"
        return "pending" if self.pending else "valid"

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if c.ok is False]

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "kind": self.kind,
            "verdict": self.verdict,
            "checks": [c.to_json() for c in self.checks],
            **self.extra,
        }


class Checks:
    """The checks of one report, in the order they were made."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[Check] = []

    def add(self, name: str, ok: bool | None, detail: str) -> bool | None:
        self.items.append(Check(name, ok, detail))
        return ok

    def extend(self, checks: tuple[Check, ...] | list[Check]) -> None:
        self.items.extend(checks)

"""Verification reports and evidence bundles."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from api.schemas._common import (
    UnixTime,
    Verdict,
    _Create,
    _Public,
)
from api.schemas.receipts import ReceiptPublic

__all__ = [
    "BundlePublic",
    "CheckPublic",
    "ReceiptVerifyCreate",
    "ReceiptsReportPublic",
    "ReceiptsVerifyCreate",
    "ReportPublic",
    "VerifySummaryPublic",
]

# -- verification ----------------------------------------------------------------------------


class CheckPublic(_Public):
    name: str
    ok: bool | None = Field(description="null: not applicable or not decided yet")
    detail: str


class ReportPublic(_Public):
    """Named checks and one verdict; a dataset report also carries its on-chain ``record``."""

    model_config = ConfigDict(frozen=True, extra="allow")

    subject: str
    kind: Literal["receipt", "model", "dataset"]
    verdict: Verdict
    checks: list[CheckPublic]


class ReceiptVerifyCreate(_Create):
    """``{"receipt": …, "input"?, "rerun"?}``, or the bare receipt itself, as
    ``GET /v1/receipts/{id}`` returns it (what the CLI's ``verify`` also takes)."""

    numbers_are_evidence = True

    @model_validator(mode="before")
    @classmethod
    def _bare_receipt(cls, data: Any) -> Any:
        if isinstance(data, dict) and "receipt" not in data and "receipt_id" in data:
            return {"receipt": data}
        return data

    receipt: dict[str, Any] = Field(description="a receipt as the service returned it")
    input: dict[str, Any] | None = Field(None, description="the input row, to check input_hash")
    rerun: bool = Field(False, description="re-run the stored model on the input")


class ReceiptsVerifyCreate(_Create):
    numbers_are_evidence = True
    receipts: list[Any] = Field(
        min_length=1,
        description="receipts as GET /v1/receipts/{id} returns them (at most max_verify_receipts)",
    )


class VerifySummaryPublic(_Public):
    valid: int = Field(ge=0)
    invalid: int = Field(ge=0)
    pending: int = Field(ge=0)


class ReceiptsReportPublic(_Public):
    """One report per receipt, in the order given, and how many are of each verdict."""

    summary: VerifySummaryPublic
    reports: list[ReportPublic]


class BundlePublic(_Public):
    """An evidence bundle: everything needed to re-check a receipt against any node."""

    format: Literal["provenance-ledger-bundle/1"]
    created_at: UnixTime
    ledger: dict[str, Any]
    receipt: ReceiptPublic
    input: dict[str, Any] | None = None
    eip712_domain: dict[str, Any]
    records: list[dict[str, Any]]
    lineage: dict[str, Any] = Field(description="W3C PROV-JSON")
    verification: ReportPublic

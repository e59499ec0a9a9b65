"""Predictions and their receipts, and anchoring on demand."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from api.schemas._common import (
    Address,
    BlockNumber,
    CellValue,
    ColumnName,
    Hash,
    UnixTime,
    _Create,
    _Public,
)

__all__ = [
    "AnchorPublic",
    "AnchoredBatchPublic",
    "PredictCreate",
    "PredictPublic",
    "ReceiptPublic",
    "ReceiptsPublic",
]


class PredictCreate(_Create):
    rows: list[dict[ColumnName, CellValue]] = Field(
        min_length=1, description="input rows (at most max_predict_rows)"
    )


# -- receipts --------------------------------------------------------------------------------


class ReceiptPublic(_Public):
    """A signed receipt and its anchoring: ``pending``, ``anchored`` (with batch, leaf, proof)
    or ``failed`` (with the error)."""

    receipt_id: Hash
    model_hash: Hash
    input_hash: Hash
    output: Any = Field(description="the prediction, as it was hashed into output_hash")
    output_hash: Hash
    issued_at: UnixTime
    service: Address
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")
    format: Literal[1, 2] = Field(
        1, description="1: signed alone; 2: signed with its request, over signed_root"
    )
    signed_root: Hash | None = Field(None, description="format 2: the root the signature signs")
    signed_proof: list[Hash] | None = Field(
        None, description="format 2: sibling hashes from this receipt's leaf to signed_root"
    )
    status: Literal["pending", "anchored", "failed"]
    batch_id: Hash | None = None
    root: Hash | None = None
    leaf: Hash | None = None
    proof: list[Hash] | None = None
    tx_hash: Hash | None = None
    block_number: BlockNumber | None = None
    error: str | None = None


class ReceiptsPublic(_Public):
    """A page of a batch's receipts, in issue order, and how many the batch holds."""

    data: list[ReceiptPublic]
    count: int = Field(ge=0)


class PredictPublic(_Public):
    model_hash: Hash
    predictions: list[Any]
    probabilities: list[dict[str, float]] | None = None
    receipts: list[ReceiptPublic]


class AnchoredBatchPublic(_Public):
    batch_id: Hash
    model_hash: Hash
    count: int = Field(ge=1)
    state: Literal["anchored", "included", "failed", "planned"] = Field(
        description="anchored (final), included (wait=included: in a block, final later), "
        "failed (refused for good), planned (refused for now, retried)"
    )
    tx_hash: Hash | None = None
    block_number: BlockNumber | None = None
    error: str | None = None


class AnchorPublic(_Public):
    batches: list[AnchoredBatchPublic]
    receipts: dict[str, int] = Field(description="receipts by status")

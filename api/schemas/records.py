"""Datasets, models and prediction batches: their public views, and the bodies that create
them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from api.schemas._common import (
    ALGORITHM_NAMES,
    STEP_NAMES,
    Address,
    BlockNumber,
    CellValue,
    ColumnName,
    Hash,
    RevocationPublic,
    UnixTime,
    _Create,
    _OnChain,
    _Public,
)
from api.schemas.accepted import DatasetBatchAccepted

__all__ = [
    "BatchPublic",
    "ColumnPublic",
    "DatasetBatchPublic",
    "DatasetBatchRefused",
    "DatasetBatchRegistered",
    "DatasetPublic",
    "DatasetsPublic",
    "DeriveCreate",
    "ModelCreate",
    "ModelPublic",
    "ModelsPublic",
    "RecordPublic",
    "RevokeCreate",
    "RowProofPublic",
]


class ColumnPublic(_Public):
    name: str
    type: Literal["integer", "float", "string", "boolean"]


class DatasetPublic(_OnChain):
    content_hash: Hash
    rows_root: Hash
    row_count: int = Field(ge=0)
    schema_hash: Hash
    metadata_hash: Hash
    columns: list[ColumnPublic]
    name: str | None = None
    file_name: str | None = Field(None, description="the uploaded file's name, if it had one")
    description: str | None = None
    size: int | None = Field(None, ge=0, description="file size in bytes")
    parents: list[Hash]
    transform_hash: Hash | None = Field(None, description="null for raw data")
    transform: dict[str, Any] | None = Field(None, description="the cleaning spec, if derived")
    warnings: list[str] = Field(
        default_factory=list,
        description="what looks wrong in an accepted file (a header that looks like data, "
        "another delimiter)",
    )


class DatasetAcceptedPublic(_Public):
    """A dataset answered on acceptance (``?wait=accepted``): its file is stored and its record
    durably queued; poll ``url``, which answers 404 ``record-pending`` until the record is on
    chain, then the dataset."""

    content_hash: Hash
    chain_status: Literal["pending"] = "pending"
    url: str = Field(description="where the record will be, relative to the service")


class DatasetsPublic(_Public):
    data: list[DatasetPublic]
    count: int = Field(ge=0)


class DatasetBatchRegistered(DatasetPublic):
    """One file of a batch upload that is on chain: its dataset's usual view."""

    file: str = Field(description="the part's file name (also the dataset's name, if new)")
    status: Literal[200, 201] = Field(
        description="201: registered by this request; 200: registered before, nothing was sent"
    )


class DatasetBatchRefused(_Public):
    """One file of a batch upload that was refused: an RFC 9457 problem of its own. Nothing of
    it was stored or sent."""

    file: str
    type: str = Field(examples=["urn:provenance-ledger:problem:too-large"])
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    limit: str | None = Field(None, description="the setting a size refusal names")


class DatasetBatchPublic(_Public):
    """Every file of a batch upload, in the order sent: registered, accepted
    (``wait=accepted``), or refused on its own."""

    data: list[DatasetBatchRegistered | DatasetBatchAccepted | DatasetBatchRefused]
    count: int = Field(ge=0)


class ModelPublic(_OnChain):
    model_hash: Hash
    metadata_hash: Hash
    metadata: dict[str, Any] = Field(description="the training-metadata document")
    datasets: list[Hash]
    algorithm: str
    tainted: bool = Field(False, description="trained on revoked data, or on data derived from it")
    tainted_by: Hash | None = Field(None, description="the first revoked record it descends from")


class ModelsPublic(_Public):
    data: list[ModelPublic]
    count: int = Field(ge=0)


class BatchPublic(_OnChain):
    root: Hash = Field(description="the batch id: the Merkle root of its receipts")
    model_hash: Hash
    count: int = Field(ge=1)


class RecordPublic(_Public):
    """Any record, by kind: the fields of its dataset, model or batch view."""

    model_config = ConfigDict(frozen=True, extra="allow")

    kind: Literal["dataset", "model", "batch"]
    tx_hash: Hash
    block_number: BlockNumber
    registrant: Address
    registered_at: UnixTime
    revoked: bool
    revocation: RevocationPublic | None = None
    chain_status: Literal["included", "final"] = "final"
    confirmations: int | None = Field(None, ge=0)


class RowProofPublic(_Public):
    dataset: Hash
    index: int = Field(ge=0)
    row: list[CellValue]
    row_digest: Hash
    leaf: Hash
    proof: list[Hash]
    root: Hash
    leaf_encoding: list[str]


# -- writes ----------------------------------------------------------------------------------


class DeriveCreate(_Create):
    steps: list[
        Annotated[
            dict[str, Any],
            Field(
                json_schema_extra={
                    "required": ["step"],
                    "properties": {"step": {"type": "string", "enum": list(STEP_NAMES)}},
                }
            ),
        ]
    ] = Field(
        min_length=1,
        description="cleaning steps (at most max_transform_steps): drop_duplicates, "
        "drop_missing, clip_outliers, select_columns, filter_rows",
        examples=[[{"step": "drop_duplicates"}, {"step": "drop_missing"}]],
    )


class ModelCreate(_Create):
    dataset: Hash
    algorithm: str = Field(
        max_length=64,
        examples=["linear_regression"],
        json_schema_extra={"enum": list(ALGORITHM_NAMES)},
    )
    target: ColumnName
    features: list[ColumnName] | None = Field(
        None, min_length=1, max_length=1_000, description="default: every other column"
    )
    params: dict[str, Any] = Field(default_factory=dict, description="estimator hyperparameters")
    test_size: float = Field(0.2, ge=0.0, lt=1.0)
    seed: int = Field(0, ge=0, le=2**32 - 1)


class RevokeCreate(_Create):
    reason: str = Field(min_length=1, max_length=1_000)

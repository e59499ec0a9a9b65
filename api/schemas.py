"""The public shapes of the HTTP API: ``XCreate`` in, ``XPublic`` out, lists as ``{data, count}``.

Field names here are the service's public contract: add freely, rename never.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChainPublic",
    "ColumnPublic",
    "DatasetPublic",
    "DatasetsPublic",
    "DeriveCreate",
    "ModelCreate",
    "ModelPublic",
    "ModelsPublic",
    "PredictCreate",
    "PredictPublic",
    "RevokeCreate",
    "RowProofPublic",
]

Hash = Annotated[
    str,
    Field(
        pattern=r"^0x[0-9a-fA-F]{64}$",
        examples=["0x" + "ab" * 32],
        description="0x followed by 64 hex digits",
    ),
]
ColumnName = Annotated[str, Field(min_length=1, max_length=256)]
CellValue = int | float | str | bool | None


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True)


class ColumnPublic(_Public):
    name: str
    type: Literal["integer", "float", "string", "boolean"]


class RevocationPublic(_Public):
    reason: str
    revoker: str
    tx_hash: Hash
    block_number: int


class DatasetPublic(_Public):
    content_hash: Hash
    rows_root: Hash
    row_count: int
    schema_hash: Hash
    metadata_hash: Hash
    columns: list[ColumnPublic]
    name: str | None = None
    description: str | None = None
    size: int | None = Field(None, description="file size in bytes")
    parents: list[Hash]
    transform_hash: Hash | None = Field(None, description="null for raw data")
    transform: dict[str, Any] | None = Field(None, description="the cleaning spec, if derived")
    tx_hash: Hash
    block_number: int
    registrant: str
    registered_at: int = Field(description="block timestamp, unix seconds")
    revoked: bool
    revocation: RevocationPublic | None = None


class DatasetsPublic(_Public):
    data: list[DatasetPublic]
    count: int


class DeriveCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=50,
        description="cleaning steps: drop_duplicates, drop_missing, clip_outliers, "
        "select_columns, filter_rows",
        examples=[[{"step": "drop_duplicates"}, {"step": "drop_missing"}]],
    )


class ModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: Hash
    algorithm: str = Field(max_length=64, examples=["linear_regression"])
    target: ColumnName
    features: list[ColumnName] | None = Field(
        None, max_length=1_000, description="default: every other column"
    )
    params: dict[str, Any] = Field(default_factory=dict, description="estimator hyperparameters")
    test_size: float = Field(0.2, ge=0.0, lt=1.0)
    seed: int = Field(0, ge=0, le=2**32 - 1)


class ModelPublic(_Public):
    model_hash: Hash
    metadata_hash: Hash
    metadata: dict[str, Any]
    datasets: list[Hash]
    algorithm: str
    tx_hash: Hash
    block_number: int
    registrant: str
    registered_at: int
    revoked: bool
    revocation: RevocationPublic | None = None


class ModelsPublic(_Public):
    data: list[ModelPublic]
    count: int


class PredictCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: list[dict[ColumnName, CellValue]] = Field(min_length=1)


class PredictPublic(_Public):
    model_hash: Hash
    predictions: list[Any]
    probabilities: list[dict[str, float]] | None = None
    receipts: list[dict[str, Any]] = Field(default_factory=list)


class RevokeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=1_000)


class RowProofPublic(_Public):
    dataset: Hash
    index: int
    row: list[CellValue]
    row_digest: Hash
    leaf: Hash
    proof: list[Hash]
    root: Hash
    leaf_encoding: list[str]


class ChainPublic(_Public):
    backend: str
    chain_id: int
    contract_address: str
    contract_version: str
    latest_block: int
    indexed_block: int
    registrar: str
    registrar_has_role: bool

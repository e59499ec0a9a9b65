"""The public shapes of the HTTP API: ``XCreate`` in, ``XPublic`` out, lists as ``{data, count}``.

Every operation declares one of these as its response model, so the OpenAPI document is a
contract a client generator (and the fuzzer's schema check) can rely on. Constraints the code
enforces are stated here too: hash and address patterns, lengths, enums. Field names are the
service's public contract: add freely, rename never.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ALGORITHM_NAMES",
    "AnchorPublic",
    "BatchPublic",
    "BundlePublic",
    "ChainPublic",
    "CheckPublic",
    "ColumnPublic",
    "DatasetPublic",
    "DatasetsPublic",
    "DeriveCreate",
    "FsckPublic",
    "HealthPublic",
    "KeyCreate",
    "KeyCreatedPublic",
    "KeyPublic",
    "KeyRevokedPublic",
    "KeysPublic",
    "LineagePublic",
    "ModelCreate",
    "ModelPublic",
    "ModelsPublic",
    "PredictCreate",
    "PredictPublic",
    "ProvDocument",
    "ReceiptPublic",
    "ReceiptVerifyCreate",
    "RecordPublic",
    "RegistrarChangePublic",
    "RegistrarCreate",
    "RegistrarPublic",
    "ReportPublic",
    "RevocationPublic",
    "RevokeCreate",
    "RowProofPublic",
]

HASH_PATTERN = r"^0x[0-9a-fA-F]{64}$"
ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
Hash = Annotated[
    str,
    Field(pattern=HASH_PATTERN, examples=["0x" + "ab" * 32], description="0x + 64 hex digits"),
]
Address = Annotated[str, Field(pattern=ADDRESS_PATTERN, description="0x + 40 hex digits")]
BlockNumber = Annotated[int, Field(ge=0)]
UnixTime = Annotated[int, Field(ge=0, description="unix seconds")]
ColumnName = Annotated[str, Field(min_length=1, max_length=256)]
CellValue = int | float | str | bool | None
Role = Literal["auditor", "registrar", "admin"]
Verdict = Literal["valid", "invalid", "pending"]

# The names ``ml.training`` accepts (kept here as data so the schema module stays light; a test
# checks they equal ``ml._algorithms.ALGORITHMS``). Unknown names are still answered by ml's own
# ``unknown-algorithm`` problem, which names the valid ones.
ALGORITHM_NAMES = (
    "gradient_boosting_classifier",
    "linear_regression",
    "logistic_regression",
    "mlp_classifier",
    "mlp_regressor",
    "random_forest_classifier",
    "random_forest_regressor",
    "ridge",
)
STEP_NAMES = ("clip_outliers", "drop_duplicates", "drop_missing", "filter_rows", "select_columns")


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True)


class _Create(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- records ---------------------------------------------------------------------------------


class RevocationPublic(_Public):
    reason: str
    revoker: Address
    tx_hash: Hash
    block_number: BlockNumber
    revoked_at: UnixTime | None = None


class _OnChain(_Public):
    """Where and when the chain recorded a record, and its revocation if any."""

    tx_hash: Hash
    block_number: BlockNumber
    registrant: Address
    registered_at: UnixTime = Field(description="block timestamp, unix seconds")
    revoked: bool
    revocation: RevocationPublic | None = None


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
    description: str | None = None
    size: int | None = Field(None, ge=0, description="file size in bytes")
    parents: list[Hash]
    transform_hash: Hash | None = Field(None, description="null for raw data")
    transform: dict[str, Any] | None = Field(None, description="the cleaning spec, if derived")


class DatasetsPublic(_Public):
    data: list[DatasetPublic]
    count: int = Field(ge=0)


class ModelPublic(_OnChain):
    model_hash: Hash
    metadata_hash: Hash
    metadata: dict[str, Any] = Field(description="the training-metadata document")
    datasets: list[Hash]
    algorithm: str


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


class PredictCreate(_Create):
    rows: list[dict[ColumnName, CellValue]] = Field(
        min_length=1, description="input rows (at most max_predict_rows)"
    )


class RevokeCreate(_Create):
    reason: str = Field(min_length=1, max_length=1_000)


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
    status: Literal["pending", "anchored", "failed"]
    batch_id: Hash | None = None
    root: Hash | None = None
    leaf: Hash | None = None
    proof: list[Hash] | None = None
    tx_hash: Hash | None = None
    block_number: BlockNumber | None = None
    error: str | None = None


class PredictPublic(_Public):
    model_hash: Hash
    predictions: list[Any]
    probabilities: list[dict[str, float]] | None = None
    receipts: list[ReceiptPublic]


class AnchoredBatchPublic(_Public):
    batch_id: Hash
    model_hash: Hash
    count: int = Field(ge=1)
    state: Literal["anchored", "failed", "planned"]
    tx_hash: Hash | None = None
    block_number: BlockNumber | None = None
    error: str | None = None


class AnchorPublic(_Public):
    batches: list[AnchoredBatchPublic]
    receipts: dict[str, int] = Field(description="receipts by status")


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
    receipt: dict[str, Any] = Field(description="a receipt as the service returned it")
    input: dict[str, Any] | None = Field(None, description="the input row, to check input_hash")
    rerun: bool = Field(False, description="re-run the stored model on the input")


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


# -- lineage ---------------------------------------------------------------------------------


class LineageNodePublic(_Public):
    id: str
    kind: Literal["dataset", "transform", "training", "model", "batch"]
    label: str
    hash: Hash | None = None
    revoked: bool
    tainted: bool
    revoked_reason: str | None = None
    tx_hash: Hash | None = None
    block_number: BlockNumber | None = None
    registered_at: UnixTime | None = None


class LineageEdgePublic(_Public):
    source: str
    target: str
    relation: Literal["wasDerivedFrom", "wasGeneratedBy", "used"]


class LineagePublic(_Public):
    root: str = Field(description="the id of the node the graph starts from (kind:hash)")
    direction: Literal["up", "down", "both"]
    nodes: list[LineageNodePublic]
    edges: list[LineageEdgePublic]


class ProvDocument(_Public):
    """A W3C PROV-JSON document (``format=prov``)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    prefix: dict[str, str]
    entity: dict[str, Any] = Field(default_factory=dict)
    activity: dict[str, Any] = Field(default_factory=dict)


# -- chain and administration ----------------------------------------------------------------


class ChainPublic(_Public):
    backend: Literal["embedded", "rpc"]
    chain_id: int = Field(ge=1)
    contract_address: Address
    contract_version: str
    latest_block: BlockNumber
    indexed_block: BlockNumber | None
    registrar: Address
    registrar_has_role: bool


class HealthPublic(_Public):
    status: Literal["ok"]
    latest_block: BlockNumber


class RegistrarCreate(_Create):
    address: Address
    action: Literal["grant", "revoke"] = "grant"


class RegistrarChangePublic(_Public):
    address: Address
    registrar: bool
    tx_hash: Hash
    block_number: BlockNumber


class RoleChangePublic(_Public):
    block_number: BlockNumber
    log_index: int = Field(ge=0)
    granted: bool


class RegistrarPublic(_Public):
    address: Address
    registrar: bool
    history: list[RoleChangePublic]


class KeyCreate(_Create):
    role: Role
    name: str = Field("", description="at most max_name_chars characters")


class KeyPublic(_Public):
    key_id: str
    role: Role
    name: str
    created_at: UnixTime
    revoked_at: UnixTime | None = None


class KeyCreatedPublic(_Public):
    key_id: str
    role: Role
    name: str
    key: str = Field(description="the secret, shown once")


class KeysPublic(_Public):
    data: list[KeyPublic]
    count: int = Field(ge=0)
    roles: list[Role]


class KeyRevokedPublic(_Public):
    key_id: str
    revoked: Literal[True]


class FindingPublic(_Public):
    kind: str
    subject: str
    expected: str | None = None
    found: str | None = None
    detail: str


class FsckPublic(_Public):
    ok: bool
    findings: list[FindingPublic]

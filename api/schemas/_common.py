"""Shapes every resource shares: hash and address patterns, the on-chain coordinates of a
record, and the base classes (frozen ``XPublic`` out, ``extra="forbid"`` ``XCreate`` in)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.schemas._numbers import check_numbers

__all__ = [
    "ADDRESS_PATTERN",
    "ALGORITHM_NAMES",
    "HASH_PATTERN",
    "STEP_NAMES",
    "Address",
    "BlockNumber",
    "CellValue",
    "ColumnName",
    "Hash",
    "RevocationPublic",
    "Role",
    "UnixTime",
    "Verdict",
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
    """A request body. Every number in it, at any depth (predict rows, hyperparameters, cleaning
    steps), is checked once by ``check_numbers`` before the fields are validated; a body that
    is evidence to judge rather than numbers to compute with (a receipt to verify) says
    ``numbers_are_evidence``, and a bad number in it is a failed check in its report."""

    model_config = ConfigDict(extra="forbid")
    numbers_are_evidence: ClassVar[bool] = False

    @model_validator(mode="before")
    @classmethod
    def _finite_numbers(cls, data: Any) -> Any:
        return data if cls.numbers_are_evidence else check_numbers(data)


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
    chain_status: Literal["included", "final"] = Field(
        "final",
        description="final: PROVENANCE_CONFIRMATIONS blocks deep; included: in a block that a "
        "reorganisation may still take away (a record not on the canonical chain is never "
        "answered as registered: its reads are 404 record-pending)",
    )
    confirmations: int | None = Field(
        None, ge=0, description="blocks from the record's block to the head, both counted"
    )

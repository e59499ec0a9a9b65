"""The public shapes of the HTTP API, a module per resource: ``XCreate`` in, ``XPublic`` out,
lists as ``{data, count}``.

Every operation declares one of these as its response model, so the OpenAPI document is a
contract a client generator (and the fuzzer's schema check) can rely on. Constraints the code
enforces are stated here too: hash and address patterns, lengths, enums. Field names are the
service's public contract: add freely, rename never.
"""

from api.schemas._common import ADDRESS_PATTERN, ALGORITHM_NAMES, HASH_PATTERN, Role, Verdict
from api.schemas.admin import (
    ChainPublic,
    FindingPublic,
    FsckPublic,
    GenerationPublic,
    HealthPublic,
    KeyCreate,
    KeyCreatedPublic,
    KeyPublic,
    KeyRevokedPublic,
    KeysPublic,
    RegistrarChangePublic,
    RegistrarCreate,
    RegistrarPublic,
    ReorgPublic,
    RoleChangePublic,
)
from api.schemas.lineage import LineageEdgePublic, LineageNodePublic, LineagePublic, ProvDocument
from api.schemas.receipts import (
    AnchoredBatchPublic,
    AnchorPublic,
    PredictCreate,
    PredictPublic,
    ReceiptPublic,
    ReceiptsPublic,
)
from api.schemas.records import (
    BatchPublic,
    ColumnPublic,
    DatasetPublic,
    DatasetsPublic,
    DeriveCreate,
    ModelCreate,
    ModelPublic,
    ModelsPublic,
    RecordPublic,
    RevokeCreate,
    RowProofPublic,
)
from api.schemas.verify import (
    BundlePublic,
    CheckPublic,
    ReceiptsReportPublic,
    ReceiptsVerifyCreate,
    ReceiptVerifyCreate,
    ReportPublic,
    VerifySummaryPublic,
)

__all__ = [
    "ADDRESS_PATTERN",
    "ALGORITHM_NAMES",
    "HASH_PATTERN",
    "AnchorPublic",
    "AnchoredBatchPublic",
    "BatchPublic",
    "BundlePublic",
    "ChainPublic",
    "CheckPublic",
    "ColumnPublic",
    "DatasetPublic",
    "DatasetsPublic",
    "DeriveCreate",
    "FindingPublic",
    "FsckPublic",
    "GenerationPublic",
    "HealthPublic",
    "KeyCreate",
    "KeyCreatedPublic",
    "KeyPublic",
    "KeyRevokedPublic",
    "KeysPublic",
    "LineageEdgePublic",
    "LineageNodePublic",
    "LineagePublic",
    "ModelCreate",
    "ModelPublic",
    "ModelsPublic",
    "PredictCreate",
    "PredictPublic",
    "ProvDocument",
    "ReceiptPublic",
    "ReceiptVerifyCreate",
    "ReceiptsPublic",
    "ReceiptsReportPublic",
    "ReceiptsVerifyCreate",
    "RecordPublic",
    "RegistrarChangePublic",
    "RegistrarCreate",
    "RegistrarPublic",
    "ReorgPublic",
    "ReportPublic",
    "RevokeCreate",
    "Role",
    "RoleChangePublic",
    "RowProofPublic",
    "Verdict",
    "VerifySummaryPublic",
]

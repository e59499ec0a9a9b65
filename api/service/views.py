"""Public views of indexed records: what the API answers for a dataset, a model or a batch.

One function per kind, each joining the index's record with the off-chain documents whose hashes
it carries (metadata, cleaning spec), so that every route and every list shows a record alike.
"""

from __future__ import annotations

from typing import Any

from api.schemas import BatchPublic, DatasetPublic, ModelPublic, RecordPublic
from api.service._core import Core
from ledger.index.lineage import first_revoked_ancestor
from ledger.index.sqlite import IndexedBatch, IndexedDataset, IndexedModel
from ledger.records import ZERO_HASH
from ml.datasets import header_warnings

__all__ = ["batch_view", "chain_fields", "dataset_view", "model_view", "record_view"]

Indexed = IndexedDataset | IndexedModel | IndexedBatch


def chain_fields(indexed: Indexed, core: Core | None = None) -> dict[str, Any]:
    """Where and when the chain recorded it, and its revocation if any; with ``core``, also
    its status (included or final) and confirmations, from the chain's head."""
    registration, revocation = indexed.registration, indexed.revocation
    state = (
        {}
        if core is None
        else dict(
            zip(
                ("chain_status", "confirmations"),
                core.chain_state(registration.block_number),
                strict=True,
            )
        )
    )
    return {
        **state,
        "tx_hash": registration.tx_hash,
        "block_number": registration.block_number,
        "registrant": registration.registrant,
        "registered_at": registration.registered_at,
        "revoked": revocation is not None,
        "revocation": None
        if revocation is None
        else {
            "reason": revocation.reason,
            "revoker": revocation.revoker,
            "tx_hash": revocation.tx_hash,
            "block_number": revocation.block_number,
            "revoked_at": revocation.revoked_at,
        },
    }


def dataset_view(core: Core, indexed: IndexedDataset) -> DatasetPublic:
    metadata = core.json_artifact(indexed.metadata_hash) or {}
    derived = indexed.transform_hash != ZERO_HASH
    return DatasetPublic(
        content_hash=indexed.content_hash,
        rows_root=indexed.rows_root,
        row_count=indexed.row_count,
        schema_hash=indexed.schema_hash,
        metadata_hash=indexed.metadata_hash,
        columns=metadata.get("columns", []),
        name=metadata.get("name"),
        file_name=metadata.get("file_name"),
        description=metadata.get("description"),
        size=metadata.get("size"),
        parents=list(indexed.parents),
        transform_hash=indexed.transform_hash if derived else None,
        transform=core.json_artifact(indexed.transform_hash) if derived else None,
        warnings=header_warnings([c.get("name", "") for c in metadata.get("columns", [])]),
        **chain_fields(indexed, core),
    )


def model_view(core: Core, indexed: IndexedModel) -> ModelPublic:
    metadata = core.json_artifact(indexed.metadata_hash) or {}
    tainted_by = first_revoked_ancestor(indexed.datasets, core.index.dataset)
    return ModelPublic(
        model_hash=indexed.model_hash,
        metadata_hash=indexed.metadata_hash,
        metadata=metadata,
        datasets=list(indexed.datasets),
        algorithm=metadata.get("algorithm", ""),
        tainted=tainted_by is not None,
        tainted_by=tainted_by,
        **chain_fields(indexed, core),
    )


def batch_view(indexed: IndexedBatch, core: Core | None = None) -> BatchPublic:
    return BatchPublic(
        root=indexed.root,
        model_hash=indexed.model_hash,
        count=indexed.count,
        **chain_fields(indexed, core),
    )


def record_view(core: Core, indexed: Indexed) -> RecordPublic:
    """Any record with its ``kind``: the fields of its own view."""
    if isinstance(indexed, IndexedDataset):
        kind, view = "dataset", dataset_view(core, indexed)
    elif isinstance(indexed, IndexedModel):
        kind, view = "model", model_view(core, indexed)
    else:
        kind, view = "batch", batch_view(indexed, core)
    return RecordPublic(kind=kind, **view.model_dump())

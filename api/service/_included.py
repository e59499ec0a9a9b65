"""Records as the index will hold them, built from the node's answer to this service's own
write: what :meth:`api.service._core.Core.record` serves while the index has not caught up, and
what a registration answers with at once."""

from __future__ import annotations

import dataclasses

from ledger.index.base import IndexedRecord, Revocation
from ledger.index.sqlite import IndexedDataset, IndexedModel, Registration
from ledger.records import DatasetRegistered, ModelRegistered, RecordRevoked
from ledger.writes.pipeline import Included

__all__ = ["indexed_dataset", "indexed_model", "with_revocation"]


def indexed_dataset(included: Included) -> IndexedDataset:
    """A dataset as the index will hold it, built from the node's answer to its write."""
    event = included.event
    assert isinstance(event, DatasetRegistered)
    return IndexedDataset(
        content_hash=event.content_hash,
        rows_root=event.rows_root,
        row_count=event.row_count,
        schema_hash=event.schema_hash,
        metadata_hash=event.metadata_hash,
        parents=event.parents,
        transform_hash=event.transform_hash,
        registration=_registration(event, included.timestamp),
        revocation=None,
    )


def indexed_model(included: Included) -> IndexedModel:
    """A model as the index will hold it, built from the node's answer to its write."""
    event = included.event
    assert isinstance(event, ModelRegistered)
    return IndexedModel(
        model_hash=event.model_hash,
        datasets=event.datasets,
        metadata_hash=event.metadata_hash,
        registration=_registration(event, included.timestamp),
        revocation=None,
    )


def _registration(event: DatasetRegistered | ModelRegistered, timestamp: int) -> Registration:
    return Registration(
        registrant=event.registrant,
        tx_hash=event.tx_hash,
        block_number=event.block_number,
        registered_at=timestamp,
        log_index=event.log_index,
    )


def with_revocation(indexed: IndexedRecord, included: Included) -> IndexedRecord:
    """``indexed`` with the revocation the node just included, when the index does not show it
    yet (it indexes a block once it has the confirmations the settings ask for)."""
    event = included.event
    if indexed.revocation is not None or not isinstance(event, RecordRevoked):
        return indexed
    revocation = Revocation(
        reason=event.reason,
        revoker=event.revoker,
        tx_hash=event.tx_hash,
        block_number=event.block_number,
        revoked_at=included.timestamp,
        log_index=event.log_index,
    )
    return dataclasses.replace(indexed, revocation=revocation)

"""Answers on acceptance (``?wait=accepted``, 202): the write is durably queued, not on chain.

Every write the API makes takes ``wait``: ``final`` (the default: answered once the record is
final), ``included`` (once it is in a block, which a reorganisation may still take away) or
``accepted`` (once its fields are in the write journal, so that a crash after the answer loses
nothing; RPC chains only: the embedded chain writes its block inside the send, so there the
answer is the usual final one). An accepted answer names where to poll (``url``, also the
``Location`` header), which answers 404 ``record-pending`` until the record is on chain.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from api.schemas._common import Address, Hash, _Public

__all__ = [
    "WAIT_DESCRIPTION",
    "AnchorAcceptedPublic",
    "AnchoredBatchAccepted",
    "DatasetBatchAccepted",
    "ModelAcceptedPublic",
    "RegistrarAcceptedPublic",
    "RevocationAcceptedPublic",
    "SealAcceptedPublic",
    "Wait",
]

Wait = Literal["accepted", "included", "final"]
WAIT_DESCRIPTION = (
    "final: answer once the write is final; included: once it is in a block (chain_status "
    "included); accepted: once it is durably queued (202 with a URL to poll, also in Location; "
    "RPC chains, answered final on the embedded chain)"
)


class ModelAcceptedPublic(_Public):
    """A model answered on acceptance: trained, its files stored, its record durably queued;
    ``url`` answers 404 ``record-pending`` until the record is on chain, then the model."""

    model_hash: Hash
    chain_status: Literal["pending"] = "pending"
    url: str = Field(description="where the record will be, relative to the service")


class RevocationAcceptedPublic(_Public):
    """A revocation answered on acceptance: durably queued; ``url`` shows the record, whose
    ``revoked`` is set once the revocation is on chain."""

    record_hash: Hash
    chain_status: Literal["pending"] = "pending"
    url: str = Field(description="the record, relative to the service")


class RegistrarAcceptedPublic(_Public):
    """A registrar change answered on acceptance: durably queued; ``url`` shows whether the
    address holds the role, which changes once the transaction is on chain."""

    address: Address
    chain_status: Literal["pending"] = "pending"
    url: str = Field(description="the address's registrar status, relative to the service")


class DatasetBatchAccepted(_Public):
    """One file of a batch upload answered on acceptance: stored, its record durably queued;
    ``url`` answers 404 ``record-pending`` until it is on chain."""

    file: str = Field(description="the part's file name (also the dataset's name)")
    content_hash: Hash
    chain_status: Literal["pending"] = "pending"
    url: str
    # an int, not Literal[202]: openapi-python-client 0.29.1 renders a one-int literal as
    # `status != 202and ...`, a SyntaxWarning in the generated client
    status: int = Field(202, ge=202, le=202, description="202: durably queued")


class AnchoredBatchAccepted(_Public):
    """A batch answered on acceptance: planned in the receipt book (durable: a crash after the
    answer loses nothing) and queued for the chain; ``url`` answers 404 ``record-pending`` until
    the batch is on chain, then the batch's record."""

    batch_id: Hash
    model_hash: Hash
    count: int = Field(ge=1)
    chain_status: Literal["pending"] = "pending"
    url: str = Field(description="the batch's record, relative to the service")


class AnchorAcceptedPublic(_Public):
    """Anchoring answered on acceptance: every pending receipt planned into batches, each
    batch queued; each receipt shows its anchoring once its batch is final."""

    batches: list[AnchoredBatchAccepted] = Field(min_length=1)
    receipts: dict[str, int] = Field(description="receipts by status")
    chain_status: Literal["pending"] = "pending"
    url: str = Field(description="the first batch's record (also in Location)")


class SealAcceptedPublic(_Public):
    """A seal answered on acceptance: the waiting readings are planned into chunks (the first
    durably; all of them are readings stored already) and the sealer registers them; ``url``
    lists the stream's versions, which grow as each chunk's version is registered."""

    stream: str
    readings: int = Field(ge=1, description="readings being sealed")
    chain_status: Literal["pending"] = "pending"
    url: str = Field(description="the stream's versions, relative to the service")

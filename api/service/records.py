"""Any record, whatever its kind: what a hash is, revocation, and lineage graphs."""

from __future__ import annotations

from api.schemas import LineagePublic, ProvDocument, RecordPublic
from api.schemas.accepted import RevocationAcceptedPublic
from api.service._core import Core
from api.service._included import with_revocation
from api.service.views import record_view
from ledger.errors import UnknownRecord
from ledger.index.base import IndexedRecord
from ledger.index.lineage import Direction, LineageGraph, lineage, to_prov
from ledger.writes.pipeline import RevokeInput

__all__ = ["Records"]


class Records:
    """Datasets, models and prediction batches, by hash."""

    def __init__(self, core: Core) -> None:
        self._core = core

    def kind_of(self, record_hash: str) -> str | None:
        """What ``record_hash`` is registered as, or None. A hash the index does not know gets
        one sync first: batches are anchored, and other writers may register, between the
        background follower's rounds."""
        self._core.catch_up()
        index = self._core.index
        kind = index.kind_of(record_hash)
        if kind is None:
            self._core.sync()
            kind = index.kind_of(record_hash)
        return kind

    def get(self, record_hash: str) -> RecordPublic:
        return record_view(self._core, self._indexed(record_hash))

    def _indexed(self, record_hash: str) -> IndexedRecord:
        kind = self.kind_of(record_hash)
        indexed = None if kind is None else self._core.record(kind, record_hash)
        if indexed is None:
            exc = UnknownRecord(f"no record is registered under {record_hash}")
            raise self._core.not_found(exc, record_hash)
        return indexed

    def revoke(
        self, record_hash: str, reason: str, *, wait: str = "final"
    ) -> RecordPublic | RevocationAcceptedPublic:
        """Revoke a dataset, model or batch on chain and answer with its updated view.

        One revocation of a record at a time: a second one, simulated once the first is
        mined, fails with ``AlreadyRevoked`` and sends nothing. Revocations of different
        records go through the write pipeline together, one transaction each (the contract has
        no batch revocation), in the same block. ``wait`` as for dataset registrations:
        ``accepted`` answers once the revocation is journaled (RPC chains), ``included`` once
        it is in a block."""
        if self.kind_of(record_hash) is None:
            raise UnknownRecord(f"no record is registered under {record_hash}")
        core = self._core
        item = RevokeInput(record_hash, reason)
        if wait == "accepted" and core.writes.journal is not None:
            core.writes.accept_many([item])
            return RevocationAcceptedPublic(
                record_hash=record_hash, url=f"/v1/records/{record_hash.lower()}"
            )
        with core.locks.hold(record_hash):
            outcome = core.writes.write_many([item], early=wait == "included")[0]
        if isinstance(outcome, Exception):
            raise outcome
        # the index catches up with the revocation first, unless it waits for confirmations
        # (wait=included): then the node's answer says it
        return record_view(core, with_revocation(self._indexed(record_hash), outcome))

    def graph(self, record_hash: str, direction: Direction) -> LineageGraph:
        """Where a record came from (up), what was built on it (down), or both."""
        self.kind_of(record_hash)  # a record anchored a moment ago is indexed first
        return lineage(self._core.index, record_hash.lower(), direction)

    def lineage(self, record_hash: str, direction: Direction) -> LineagePublic:
        return LineagePublic(**self.graph(record_hash, direction).to_json())

    def prov(self, record_hash: str, direction: Direction) -> ProvDocument:
        """The lineage as a W3C PROV-JSON document."""
        return ProvDocument(**to_prov(self.graph(record_hash, direction)))

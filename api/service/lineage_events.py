"""OpenLineage events for derivations, trainings and prediction batches.

Off by default. With OpenLineage's own variables set (``OPENLINEAGE_URL``, or
``OPENLINEAGE_CONFIG`` naming a YAML file with any transport the client knows: http for
Marquez, file, kafka…), every registered derivation, training and anchored prediction batch is
sent as one ``COMPLETE`` run event through ``openlineage-python``:

* job: namespace ``provenance-ledger``, name ``derive``, ``train`` or ``anchor``;
* run: a UUID derived from the record's transaction and hash (a re-send is the same run), with
  the custom facet ``provenanceLedger`` (:func:`facet_class`: chain id, contract,
  transaction, block; its JSON schema is ``docs/openlineage/ProvenanceLedgerRunFacet.json``);
* inputs and outputs: datasets named by their hash in the namespace
  ``provenance-ledger://<chain id>/<contract>`` (the ledger's first generation, so a name
  outlives contract upgrades), with the ``schema`` (a dataset's columns),
  ``dataSource`` and ``version`` (the SHA-256) facets.

Never blocking and never failing a write: events go through a bounded queue to one thread; a
full queue or a transport that fails is logged and the event dropped (the chain, not the
lineage server, is the record).
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import attr

from api.schemas import DatasetPublic, ModelPublic
from ledger.formats.receipts import ReceiptDomain
from ledger.writes.pipeline import Included

__all__ = ["LineageEvents", "facet_class"]

log = logging.getLogger("provenance.openlineage")

NAMESPACE = "provenance-ledger"
PRODUCER = "urn:provenance-ledger:service"
FACET_SCHEMA_URL = (
    "https://provenance-ledger.dev/openlineage/1-0-0/ProvenanceLedgerRunFacet.json"
    "#/$defs/ProvenanceLedgerRunFacet"
)
_QUEUE = 1_000


@functools.cache
def facet_class() -> type:
    """The ``provenanceLedger`` run facet's class, made once, on first use: openlineage is
    imported only when events are on."""
    from openlineage.client.facet_v2 import RunFacet

    @attr.define
    class ProvenanceLedgerRunFacet(RunFacet):
        """Where the chain recorded the run's output."""

        chainId: int
        contract: str
        transaction: str
        block: int

        @staticmethod
        def _get_schema() -> str:
            return FACET_SCHEMA_URL

    return ProvenanceLedgerRunFacet


def enabled() -> bool:
    """Whether OpenLineage's own variables ask for events."""
    return bool(os.environ.get("OPENLINEAGE_URL") or os.environ.get("OPENLINEAGE_CONFIG"))


@dataclass(frozen=True)
class _Run:
    """One registered run: its job, the record it made, where the chain recorded it, when, and
    what it read and wrote (hash, columns or None)."""

    job: str
    record: str
    tx_hash: str
    block: int
    at: int | None
    inputs: list[tuple[str, Any]]
    outputs: list[tuple[str, Any]]


class LineageEvents:
    """Sends OpenLineage events in the background (see the module docstring)."""

    jobs: ClassVar[tuple[str, ...]] = ("derive", "train", "anchor")

    def __init__(self, domain: ReceiptDomain, *, ledger: str | None = None) -> None:
        self._domain = domain
        # the namespace names the ledger by its first generation, so a dataset keeps its
        # OpenLineage name across contract upgrades; the facet names the contract that wrote
        self._dataset_namespace = (
            f"provenance-ledger://{domain.chain_id}/{ledger or domain.verifying_contract}"
        )
        self._queue: queue.Queue[Any] = queue.Queue(_QUEUE)
        self._client: Any = None
        self._thread: threading.Thread | None = None
        if enabled():
            from openlineage.client import OpenLineageClient

            self._client = OpenLineageClient()
            self._thread = threading.Thread(target=self._send, name="openlineage", daemon=True)
            self._thread.start()

    # -- what happened -----------------------------------------------------------------------

    def derived(self, dataset: DatasetPublic) -> None:
        """A derived dataset was registered."""
        self._emit(
            _Run("derive", dataset.content_hash, dataset.tx_hash, dataset.block_number,
                 dataset.registered_at, [(p, None) for p in dataset.parents],
                 [(dataset.content_hash, dataset.columns)])
        )  # fmt: skip

    def trained(self, model: ModelPublic) -> None:
        """A model was trained and registered."""
        self._emit(
            _Run("train", model.model_hash, model.tx_hash, model.block_number,
                 model.registered_at, [(d, None) for d in model.datasets],
                 [(model.model_hash, None)])
        )  # fmt: skip

    def anchored(self, root: str, model_hash: str, tx_hash: str, block: int) -> None:
        """A batch of prediction receipts was anchored."""
        self._emit(_Run("anchor", root, tx_hash, block, None, [(model_hash, None)], [(root, None)]))

    def when_final(self, write: Future[Included], tell: Callable[[Included], None]) -> None:
        """For a write answered on acceptance (202), whose record exists only later: ``tell``
        (a call of :meth:`derived` or :meth:`trained` with the record's view) once the record
        is on chain, in the sending thread; nothing if it was refused or registered before.
        Events of writes still queued when the process stops are not sent (the record is
        written after the restart, its event is not: the chain is the record)."""
        if self._client is None:
            return

        def done(future: Future[Included]) -> None:
            if future.cancelled() or future.exception() is not None:
                return
            included = future.result()
            if not included.created:
                return
            try:
                self._queue.put_nowait(functools.partial(tell, included))
            except queue.Full:
                log.warning("OpenLineage queue full: the event of %s was dropped", included.tx_hash)

        write.add_done_callback(done)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)

    # -- how it is sent ----------------------------------------------------------------------

    def _emit(self, run: _Run) -> None:
        if self._client is None:
            return
        try:
            self._queue.put_nowait(self._event(run))
        except queue.Full:
            log.warning(
                "OpenLineage queue full: the %s event of %s was dropped", run.job, run.record
            )
        except Exception:  # building an event must never fail a write
            log.exception("OpenLineage: the %s event of %s could not be built", run.job, run.record)

    def _event(self, run: _Run) -> Any:
        from openlineage.client.event_v2 import (
            InputDataset,
            Job,
            OutputDataset,
            Run,
            RunEvent,
            RunState,
        )

        at = run.at
        when = datetime.fromtimestamp(at, UTC) if at is not None else datetime.now(UTC)
        run_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{PRODUCER}:{run.tx_hash}:{run.record}")
        facet = facet_class()(
            chainId=self._domain.chain_id,
            contract=self._domain.verifying_contract,
            transaction=run.tx_hash,
            block=run.block,
            producer=PRODUCER,
        )
        return RunEvent(
            eventType=RunState.COMPLETE,
            eventTime=when.isoformat(),
            producer=PRODUCER,
            run=Run(runId=str(run_id), facets={"provenanceLedger": facet}),
            job=Job(namespace=NAMESPACE, name=run.job),
            inputs=[
                InputDataset(self._dataset_namespace, h, facets=self._facets(h, c))
                for h, c in run.inputs
            ],
            outputs=[
                OutputDataset(self._dataset_namespace, h, facets=self._facets(h, c))
                for h, c in run.outputs
            ],
        )

    def _facets(self, record: str, columns: Any) -> dict[str, Any]:
        from openlineage.client.facet_v2 import (
            dataset_version_dataset,
            datasource_dataset,
            schema_dataset,
        )

        facets: dict[str, Any] = {
            "dataSource": datasource_dataset.DatasourceDatasetFacet(
                name=self._dataset_namespace, uri=self._dataset_namespace, producer=PRODUCER
            ),
            "version": dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=record.removeprefix("0x"), producer=PRODUCER
            ),
        }
        if columns:
            facets["schema"] = schema_dataset.SchemaDatasetFacet(
                fields=[
                    schema_dataset.SchemaDatasetFacetFields(name=c.name, type=c.type)
                    for c in columns
                ],
                producer=PRODUCER,
            )
        return facets

    def _send(self) -> None:
        while (event := self._queue.get()) is not None:
            if callable(event):  # a write answered on acceptance, now final: build its event
                try:
                    event()
                except Exception:
                    log.exception("OpenLineage: the event of an accepted write was not built")
                continue
            try:
                self._client.emit(event)
            except Exception as exc:  # the lineage server is a reader, never a gate
                log.warning("OpenLineage: an event was not delivered: %s", exc)

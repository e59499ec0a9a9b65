"""The service layer: the flows of DESIGN.md, split by resource behind one small facade.

======================  =========================================================
``service.datasets``   register an upload, derive (clean), read, row proofs
``service.models``     train and register, read, download
``service.predictions`` predict with signed receipts, re-run a receipt's prediction
``service.receipts``   a receipt's anchoring, anchoring now, evidence bundles
``service.verify``     reports for receipts, models and dataset files
``service.records``    any record by hash: kind, view, revocation, lineage
``service.admin``      chain coordinates, on-chain registrars, API keys, fsck
``service.rpc``        read-only Ethereum JSON-RPC over the service's chain
``service.browse``     what console pages need: children, batches, taint, tx lookup
``service.streams``    sensor readings: ingest, seal into chunks and versions, proofs
======================  =========================================================

Each part takes typed arguments, answers typed views (``api.schemas``) and raises domain errors
from ``ledger``, ``ml`` or :mod:`api.errors`; nothing here knows HTTP, and
``api/problems.py`` maps every error to a problem type. Routes and the CLI call these parts,
never the chain client, store or index behind them. :func:`open_service` opens everything.
"""

from __future__ import annotations

from api.keys import ApiKeys
from api.service._core import Core, Written
from api.service._opening import open_backend, open_core
from api.service.admin import Admin
from api.service.attestations import Attestations
from api.service.browse import Browse
from api.service.datasets import Datasets
from api.service.models import Models
from api.service.mqtt_ingest import MqttIngest
from api.service.predictions import Predictions
from api.service.receipts import Receipts
from api.service.records import Records
from api.service.rpc import Rpc
from api.service.streams import Streams
from api.service.verification import Verification
from api.settings import Settings
from ledger.storage.postgres import PgConnections

__all__ = ["Service", "Written", "open_backend", "open_service"]


class Service:
    """The parts of one opened data directory."""

    def __init__(self, core: Core, keys: ApiKeys) -> None:
        self.core = core
        self.datasets = Datasets(core)
        self.models = Models(core, self.datasets)
        self.attestations = Attestations(core, self.datasets, self.models)
        self.predictions = Predictions(core, self.models)
        self.verify = Verification(core, self.datasets, self.models, self.predictions)
        self.receipts = Receipts(core, self.verify)
        self.records = Records(core)
        self.admin = Admin(core, keys)
        self.rpc = Rpc(core)
        self.browse = Browse(core)
        self.streams = Streams(core, self.datasets)
        self.mqtt: MqttIngest | None = None  # started by open_service when mqtt_url is set

    def stopping(self) -> None:
        """The process is asked to stop: end the trainings in flight now (their requests answer
        503 and may be sent again), so that the shutdown's grace is not spent waiting on them."""
        self.core.training.cancel(self.core)

    def close(self) -> None:
        """Stop the background threads and close the chain, index and receipt book."""
        if self.mqtt is not None:
            self.mqtt.close()
        self.streams.close()
        self.core.close()


def open_service(settings: Settings, keys: ApiKeys, db: PgConnections | None = None) -> Service:
    """Open the service on ``settings.data_dir`` (chain, key, deployment, threads), and on
    the shared database ``db`` when there is one (:mod:`api.engines`)."""
    service = Service(open_core(settings, db), keys)
    service.streams.start()
    if settings.mqtt_url:
        service.mqtt = MqttIngest(settings, service.streams)
        service.mqtt.start()
    return service

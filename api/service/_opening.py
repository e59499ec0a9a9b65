"""Opening a data directory: the chain backend and key, the deployment, store, index, receipt
book and write path, assembled into a :class:`~api.service._core.Core`. One place, so that the
service, the CLI's admin commands and the benchmarks open a ledger alike; kept apart from
``Core`` so that building one by hand (a test, another index engine) starts no thread and
touches no chain.
"""

from __future__ import annotations

import importlib

from eth_account.signers.local import LocalAccount

from api.engines import deployment_place, open_index, open_receipts, open_store
from api.errors import Misconfigured
from api.service._core import Core
from api.service.lineage_events import LineageEvents
from api.settings import Settings
from ledger.chain.backends.base import ChainBackend
from ledger.chain.client import LedgerClient
from ledger.chain.deployment import connect_ledger
from ledger.chain.keys import load_keystore, load_or_create_key, read_password
from ledger.formats.receipt_signing import ReceiptSigner
from ledger.formats.receipts import ReceiptDomain
from ledger.storage.postgres import PgConnections
from ledger.writes._journal import TxJournal
from ledger.writes._pg_journal import PgTxJournal
from ledger.writes.anchoring import Anchorer
from ledger.writes.pipeline import WritePipeline
from ledger.writes.shared import SharedWrites
from ml.training_pool import shared_pool

__all__ = ["open_backend", "open_core", "open_writes"]

SERVICE_FUNDING = 1_000 * 10**18  # wei the embedded chain's faucet gives the service key


def open_backend(settings: Settings) -> tuple[ChainBackend, LocalAccount]:
    """The chain backend and the service's signing key, as the settings say."""
    if settings.chain == "embedded":
        from ledger.chain.backends.embedded import EmbeddedBackend

        backend: ChainBackend = EmbeddedBackend(settings.data_dir / "chain")
        account = load_or_create_key(settings.data_dir / "service.key")
        if backend.w3.eth.get_balance(account.address) < SERVICE_FUNDING // 10:
            backend.fund(account.address, SERVICE_FUNDING)
        return backend, account
    from ledger.chain.backends.rpc import RpcBackend

    if settings.keystore is None or settings.rpc_url is None:
        raise Misconfigured("PROVENANCE_KEYSTORE and PROVENANCE_RPC_URL are needed for chain=rpc")
    account = load_keystore(
        settings.keystore,
        read_password("PROVENANCE_KEYSTORE_PASSWORD", "PROVENANCE_KEYSTORE_PASSWORD_FILE"),
    )
    backend = RpcBackend(
        settings.rpc_url, confirmations=settings.confirmations, timeout=settings.rpc_timeout
    )
    return backend, account


def open_writes(
    settings: Settings, client: LedgerClient, db: PgConnections | None = None
) -> WritePipeline | SharedWrites:
    """The write pipeline for this backend: journaled on RPC nodes, whose pools hold a
    transaction across a crash, and with whatever a previous run left in flight sent again
    before any new write takes a nonce (see :mod:`ledger.writes.pipeline`). With a database
    and an RPC chain, the writes of every replica go through the shared queue, and this
    replica's pipeline runs only while it holds the sender role (:mod:`ledger.writes.shared`).
    """
    embedded = settings.chain == "embedded"
    if not embedded:
        client.transactor.max_fee_per_gas = settings.max_fee_per_gas
    if db is not None and not embedded:

        def pipeline(journal: PgTxJournal) -> WritePipeline:
            return WritePipeline(
                client, journal=journal, resend_after_blocks=settings.resend_after_blocks
            )

        return SharedWrites(client, db, pipeline)
    writes = WritePipeline(
        client,
        journal=None if embedded else TxJournal(settings.data_dir / "writes.sqlite3"),
        simulate_registrations=not embedded,
        resend_after_blocks=settings.resend_after_blocks,
    )
    writes.recover()
    return writes


def open_core(settings: Settings, db: PgConnections | None = None) -> Core:
    """Open the data directory (and, with ``db``, the shared database; see
    :mod:`api.engines`): chain and key, deployment, store, index, receipt book; sync the index
    and start the background threads."""
    if settings.training_warm:
        _load_model_libraries()  # first: nothing else runs yet to share the cores with it
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    backend, account = open_backend(settings)
    try:
        client = connect_ledger(
            backend,
            account,
            deployment_place(settings, db),
            deploy_if_missing=settings.chain == "embedded",
        )
    except BaseException:  # e.g. an older contract: free the chain for `upgrade-contract`
        backend.close()
        raise
    index = open_index(settings, db)
    client.block_hints = index.block_of  # reads events without full scans
    client.role_history = index.registrar_changes
    receipts = open_receipts(settings, db)
    writes = open_writes(settings, client, db)
    domain = ReceiptDomain(client.chain_id(), client.address)
    events = LineageEvents(domain, ledger=client.generations[0].address)
    core = Core(
        settings=settings,
        backend=backend,
        account=account,
        client=client,
        store=open_store(settings),
        index=index,
        receipts=receipts,
        anchorer=Anchorer(
            receipts,
            client,
            batch_size=settings.anchor_batch_size,
            interval=settings.anchor_interval,
            writes=writes,
            on_anchored=lambda a: events.anchored(a.root, a.model_hash, a.tx_hash, a.block_number),
            # a shared book is anchored by the replica holding the sender role only
            may_anchor=(lambda: writes.is_sender) if isinstance(writes, SharedWrites) else None,
        ),
        signer=ReceiptSigner(account.key, domain),
        writes=writes,
        training=shared_pool(size=settings.training_workers, coretype=settings.training_coretype),
        events=events,
    )
    if settings.training_warm:
        core.training.warm()
    index.on_rewind = core.on_rewind
    # this process's own blocks, indexed from their receipts (a replica's: while it sends)
    if isinstance(writes, WritePipeline | SharedWrites):
        writes.on_included = lambda block, receipts: index.index_block(client, block, receipts)
    core.sync()
    core.start()
    return core


def _load_model_libraries() -> None:
    """Import what loading a model takes (scikit-learn and skops, about a second of CPU) before
    the service answers, so that the first prediction does not wait for it, nor requests in the
    service's first seconds share the CPU with it; a service that is not warm imports them with
    the first model it loads (``api.service.predictions``)."""
    importlib.import_module("ml.artifacts")

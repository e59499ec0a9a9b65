"""The service's core: the flows of DESIGN.md (register, derive, train, predict, revoke),
joining the ledger client, the artifact store, the event index and ``ml``.

Routes and the CLI call these methods; nothing here knows about HTTP. Each write follows the
same order: validate everything first (bad input changes nothing), store the artifacts
(content-addressed, so a retry is harmless), send the transaction, then bring the index up to
date from the chain's events, which stay the source of truth.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from eth_account.signers.local import LocalAccount

from api.problems import Problem
from api.settings import Settings
from ledger.anchoring import Anchorer, ReceiptBook, StoredReceipt
from ledger.backends.base import ChainBackend
from ledger.deployment import connect_ledger
from ledger.errors import AlreadyRegistered
from ledger.index import IndexedDataset, IndexedModel, LedgerIndex
from ledger.keys import load_keystore, load_or_create_key, read_password
from ledger.merkle import StandardMerkleTree
from ledger.receipts import ReceiptDomain, ReceiptSigner, input_hash
from ledger.records import ZERO_HASH
from ledger.store import ArtifactStore
from ml.artifacts import LoadedModel, load_model
from ml.datasets import Dataset, Limits, load_dataset, parse_dataset
from ml.hashing import canonical_json, to_hex
from ml.training import train
from ml.transforms import TransformSpec, derive

__all__ = ["ROW_LEAF_ENCODING", "ProvenanceService", "Written"]

log = logging.getLogger("provenance.service")

ROW_LEAF_ENCODING = ("uint256", "bytes32")
SERVICE_FUNDING = 1_000 * 10**18  # wei the embedded chain's faucet gives the service key
_CACHE_SIZE = 8


@dataclass(frozen=True)
class Written:
    """The outcome of a write: the record's public view, and whether it is new."""

    view: dict[str, Any]
    created: bool


class _LRU:
    """A small thread-safe cache for parsed datasets, Merkle trees and loaded models."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get_or_make(self, key: Any, make: Any) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value


class _RecordLocks:
    """One lock per record hash, kept only while a request holds or waits for it.

    Concurrent writes of the same record (two uploads of one file, two identical trainings, two
    revocations) take turns: the later one then finds the record on chain and sends nothing,
    instead of sending a transaction that reverts and still costs gas.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, list[int]]] = {}

    @contextmanager
    def hold(self, record_hash: str) -> Iterator[None]:
        key = record_hash.lower()
        with self._guard:
            lock, users = self._locks.setdefault(key, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users[0] -= 1
                if users[0] == 0:
                    del self._locks[key]


def rows_root(dataset: Dataset) -> str:
    """The StandardMerkleTree root over ``[i, row_digest_i]`` leaves."""
    return "0x" + row_tree(dataset).root.hex()


def row_tree(dataset: Dataset) -> StandardMerkleTree:
    leaves = [[i, digest] for i, digest in enumerate(dataset.row_digests())]
    return StandardMerkleTree.of(leaves, list(ROW_LEAF_ENCODING))


def open_backend(settings: Settings) -> tuple[ChainBackend, LocalAccount]:
    """The chain backend and the service's signing key, as the settings say."""
    if settings.chain == "embedded":
        from ledger.backends.embedded import EmbeddedBackend

        backend: ChainBackend = EmbeddedBackend(settings.data_dir / "chain")
        account = load_or_create_key(settings.data_dir / "service.key")
        if backend.w3.eth.get_balance(account.address) < SERVICE_FUNDING // 10:
            backend.fund(account.address, SERVICE_FUNDING)
        return backend, account
    from ledger.backends.rpc import RpcBackend

    if settings.keystore is None:
        raise Problem(500, "misconfigured", "PROVENANCE_KEYSTORE is required when chain=rpc")
    account = load_keystore(
        settings.keystore,
        read_password("PROVENANCE_KEYSTORE_PASSWORD", "PROVENANCE_KEYSTORE_PASSWORD_FILE"),
    )
    assert settings.rpc_url is not None  # checked by Settings
    backend = RpcBackend(
        settings.rpc_url, confirmations=settings.confirmations, timeout=settings.rpc_timeout
    )
    return backend, account


class ProvenanceService:
    """Owns the chain connection, store and index of one data directory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        data_dir = settings.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.backend, self.account = open_backend(settings)
        self.client = connect_ledger(
            self.backend,
            self.account,
            data_dir / "deployment.json",
            deploy_if_missing=settings.chain == "embedded",
        )
        self.store = ArtifactStore(data_dir / "artifacts")
        self.index = LedgerIndex(data_dir / "index.sqlite3")
        self.client.block_hints = self.index.block_of  # reads events without full scans
        self.client.role_history = self.index.registrar_changes
        self.limits = Limits(
            max_bytes=settings.max_upload_bytes,
            max_rows=settings.max_rows,
            max_columns=settings.max_columns,
            max_field_chars=settings.max_field_chars,
        )
        self._datasets = _LRU()
        self._trees = _LRU()
        self._models = _LRU()
        self._writing = _RecordLocks()
        self.domain = ReceiptDomain(self.client.chain_id(), self.client.address)
        self.signer = ReceiptSigner(self.account.key, self.domain)
        self.receipts = ReceiptBook(data_dir / "receipts.sqlite3")
        self.anchorer = Anchorer(
            self.receipts,
            self.client,
            batch_size=settings.anchor_batch_size,
            interval=settings.anchor_interval,
        )
        self.sync()
        self.anchorer.start()  # anchors whatever a previous run left pending
        self._stop = threading.Event()
        self._follower = threading.Thread(target=self._follow_chain, name="index", daemon=True)
        self._follower.start()

    def _follow_chain(self, every: float = 1.0) -> None:
        """Keep the index caught up with writes this process did not make (anchoring, other
        services on the same node) without any request having to wait for it."""
        while not self._stop.wait(every):
            try:
                self.sync()
            except Exception as exc:  # the chain may be away; the next round retries
                log.warning("index sync failed: %s", exc)

    def close(self) -> None:
        self._stop.set()
        self._follower.join(timeout=10)
        self.anchorer.stop()
        self.receipts.close()
        self.index.close()
        self.backend.close()

    def sync(self) -> int:
        """Bring the index up to the chain's latest block."""
        return self.index.sync(self.client)

    # -- datasets ------------------------------------------------------------------------------

    def register_upload(
        self, stream: BinaryIO, *, name: str | None = None, description: str | None = None
    ) -> Written:
        """Register an uploaded CSV (flow 1): validate, hash, store, record, index."""
        try:
            staged = self.store.stage(stream, max_bytes=self.settings.max_upload_bytes)
        except ValueError:
            raise Problem(
                413,
                "too-large",
                f"the upload exceeds max_upload_bytes = {self.settings.max_upload_bytes}",
                limit="max_upload_bytes",
            ) from None
        try:
            existing = self.index.dataset(staged.digest)
            if existing is None:
                dataset = load_dataset(staged.path, self.limits)
        except BaseException:
            self.store.discard(staged)
            raise
        if existing is not None:  # the same bytes again: nothing to store, nothing to send
            self.store.discard(staged)
            return Written(self.dataset_view(existing), created=False)
        self.store.commit(staged)
        return self._register(dataset, name=name, description=description)

    def derive(self, parent_hash: str, steps: list[dict[str, Any]]) -> Written:
        """Clean a registered dataset with a transform spec (flow 2) and register the result."""
        spec = TransformSpec.from_json({"steps": steps})
        parent = self._live_dataset(parent_hash)
        derivation = derive(self.load_dataset(parent.content_hash), spec, limits=self.limits)
        new_hash = to_hex(derivation.dataset.content_hash)
        if new_hash == parent.content_hash:
            raise Problem(
                409, "derivation-unchanged", "the steps change nothing: the result is the parent"
            )
        if (existing := self.index.dataset(new_hash)) is not None:
            if existing.parents != (parent.content_hash,) or existing.transform_hash != to_hex(
                spec.hash
            ):
                raise Problem(
                    409,
                    "already-registered",
                    f"the result's bytes are dataset {new_hash}, registered with another "
                    "lineage; a dataset is registered once, so nothing was recorded",
                )
            return Written(self.dataset_view(existing), created=False)
        self.store.put_bytes(derivation.data)
        self.store.put_bytes(spec.canonical_bytes)
        return self._register(
            derivation.dataset,
            parents=[parent.content_hash],
            transform_hash=to_hex(spec.hash),
            name=None,
            description=f"derived from {parent.content_hash}",
        )

    def _register(
        self,
        dataset: Dataset,
        *,
        name: str | None,
        description: str | None,
        parents: list[str] | None = None,
        transform_hash: str = ZERO_HASH,
    ) -> Written:
        content_hash = to_hex(dataset.content_hash)
        metadata = {
            "kind": "dataset",
            "media_type": "text/csv",
            "name": name,
            "description": description,
            "columns": [c.to_json() for c in dataset.columns],
            "row_count": dataset.row_count,
            "size": dataset.size,
        }
        with self._writing.hold(content_hash):
            if (existing := self.index.dataset(content_hash)) is not None:
                return Written(self.dataset_view(existing), created=False)  # won by another
            metadata_hash = self.store.put_bytes(canonical_json(metadata))
            try:
                self.client.register_dataset(
                    content_hash,
                    rows_root=rows_root(dataset),
                    row_count=dataset.row_count,
                    schema_hash=dataset.schema_hash,
                    metadata_hash=metadata_hash,
                    parents=parents or [],
                    transform_hash=transform_hash,
                )
                created = True
            except AlreadyRegistered:
                created = False  # registered meanwhile (another service, or an index lagging)
            self.sync()
        indexed = self.index.dataset(content_hash)
        if indexed is None:
            raise Problem(
                409, "already-registered", f"{content_hash} is registered as another kind"
            )
        return Written(self.dataset_view(indexed), created=created)

    def load_dataset(self, content_hash: str) -> Dataset:
        """The parsed dataset from the store, re-hashed on the way in."""
        return self._datasets.get_or_make(
            content_hash,
            lambda: parse_dataset(self.store.read_bytes(content_hash), limits=self.limits),
        )

    def row_proof(self, content_hash: str, index: int) -> dict[str, Any]:
        """Row ``index`` with its inclusion proof against the dataset's on-chain rows root."""
        indexed = self.get_dataset(content_hash)
        if not 0 <= index < indexed.row_count:
            raise Problem(
                404, "unknown-row", f"row {index} is out of range 0..{indexed.row_count - 1}"
            )
        dataset = self.load_dataset(indexed.content_hash)
        tree = self._trees.get_or_make(indexed.content_hash, lambda: row_tree(dataset))
        root = "0x" + tree.root.hex()
        if root != indexed.rows_root:
            raise Problem(
                500,
                "rows-root-mismatch",
                f"the stored file's rows root {root} differs from the chain's {indexed.rows_root}",
            )
        return {
            "dataset": indexed.content_hash,
            "index": index,
            "row": list(dataset.rows[index]),
            "row_digest": to_hex(dataset.row_digests()[index]),
            "leaf": "0x" + tree.leaf_hash_at(index).hex(),
            "proof": ["0x" + p.hex() for p in tree.proof(index)],
            "root": root,
            "leaf_encoding": list(ROW_LEAF_ENCODING),
        }

    def get_dataset(self, content_hash: str) -> IndexedDataset:
        indexed = self.index.dataset(content_hash)
        if indexed is None:
            raise Problem(404, "unknown-dataset", f"no dataset is registered under {content_hash}")
        return indexed

    def _live_dataset(self, content_hash: str) -> IndexedDataset:
        indexed = self.get_dataset(content_hash)
        if indexed.revoked:
            raise Problem(409, "record-revoked", f"dataset {content_hash} is revoked")
        return indexed

    def dataset_view(self, indexed: IndexedDataset) -> dict[str, Any]:
        metadata = self._json_artifact(indexed.metadata_hash) or {}
        derived = indexed.transform_hash != ZERO_HASH
        return {
            "content_hash": indexed.content_hash,
            "rows_root": indexed.rows_root,
            "row_count": indexed.row_count,
            "schema_hash": indexed.schema_hash,
            "metadata_hash": indexed.metadata_hash,
            "columns": metadata.get("columns", []),
            "name": metadata.get("name"),
            "description": metadata.get("description"),
            "size": metadata.get("size"),
            "parents": list(indexed.parents),
            "transform_hash": indexed.transform_hash if derived else None,
            "transform": self._json_artifact(indexed.transform_hash) if derived else None,
            **_chain_fields(indexed),
        }

    # -- models --------------------------------------------------------------------------------

    def train_model(self, request: dict[str, Any]) -> Written:
        """Train deterministically on a registered dataset (flow 3) and register the model."""
        dataset_hash = self._live_dataset(request["dataset"]).content_hash
        trained = train(
            self.load_dataset(dataset_hash),
            algorithm=request["algorithm"],
            target=request["target"],
            features=request.get("features"),
            params=request.get("params") or {},
            test_size=request.get("test_size", 0.2),
            seed=request.get("seed", 0),
        )
        model_hash = to_hex(trained.model_hash)
        with self._writing.hold(model_hash):
            if (existing := self.index.model(model_hash)) is not None:
                return Written(self.model_view(existing), created=False)
            self.store.put_bytes(trained.model_bytes)
            metadata_hash = self.store.put_bytes(trained.metadata_bytes)
            created = True
            try:
                self.client.register_model(
                    model_hash, datasets=[dataset_hash], metadata_hash=metadata_hash
                )
            except AlreadyRegistered:
                created = False
            self.sync()
        return Written(self.model_view(self.get_model(model_hash)), created=created)

    def get_model(self, model_hash: str) -> IndexedModel:
        indexed = self.index.model(model_hash)
        if indexed is None:
            raise Problem(404, "unknown-model", f"no model is registered under {model_hash}")
        return indexed

    def model_view(self, indexed: IndexedModel) -> dict[str, Any]:
        metadata = self._json_artifact(indexed.metadata_hash) or {}
        return {
            "model_hash": indexed.model_hash,
            "metadata_hash": indexed.metadata_hash,
            "metadata": metadata,
            "datasets": list(indexed.datasets),
            "algorithm": metadata.get("algorithm", ""),
            **_chain_fields(indexed),
        }

    def loaded_model(self, model_hash: str) -> LoadedModel:
        """The model, loaded once from a re-hashed file; revoked models are refused."""
        indexed = self.get_model(model_hash)
        if indexed.revoked:
            raise Problem(409, "record-revoked", f"model {model_hash} is revoked")
        if (revoked := self._revoked_ancestor(indexed.datasets)) is not None:
            raise Problem(
                409,
                "record-tainted",
                f"model {model_hash} was trained on data derived from revoked dataset {revoked}",
            )
        return self._models.get_or_make(
            indexed.model_hash,
            lambda: load_model(
                self.store.read_bytes(indexed.model_hash),
                bytes.fromhex(indexed.model_hash[2:]),
            ),
        )

    def _revoked_ancestor(self, datasets: tuple[str, ...]) -> str | None:
        """The first revoked dataset among ``datasets`` and their ancestors, if any."""
        seen: set[str] = set()
        frontier = list(datasets)
        while frontier:
            current = frontier.pop()
            if current in seen or (indexed := self.index.dataset(current)) is None:
                continue
            seen.add(current)
            if indexed.revoked:
                return current
            frontier.extend(indexed.parents)
        return None

    def predict(self, model_hash: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Run the model on ``rows`` (flow 4, without receipts: the receipt layer wraps this)."""
        if len(rows) > self.settings.max_predict_rows:
            raise Problem(
                413,
                "too-large",
                f"{len(rows)} rows exceed max_predict_rows = {self.settings.max_predict_rows}",
                limit="max_predict_rows",
            )
        model = self.loaded_model(model_hash)
        model_hash = to_hex(model.model_hash)  # normalised: the index lookup is done once
        result = model.predict(rows)
        probabilities = None
        outputs: list[Any] = list(result.values)
        if result.probabilities is not None and result.classes is not None:
            probabilities = [
                {str(c): p for c, p in zip(result.classes, row, strict=True)}
                for row in result.probabilities
            ]
            outputs = [
                {"label": v, "probabilities": p}
                for v, p in zip(result.values, probabilities, strict=True)
            ]
        receipts = [
            self.signer.sign(model_hash=model_hash, input_hash=input_hash(row), output=output)
            for row, output in zip(rows, outputs, strict=True)
        ]
        self.receipts.add(receipts, rows)  # durable before anyone sees them
        self.anchorer.notify()
        return {
            "model_hash": model_hash,
            "predictions": list(result.values),
            "probabilities": probabilities,
            "receipts": [StoredReceipt(r, None, "pending").to_json() for r in receipts],
        }

    def reproduce_output(self, model_hash: str, row: dict[str, Any]) -> Any:
        """What the stored model outputs for ``row``, in a receipt's ``output`` form.

        Used to re-run a receipt's prediction; a revoked model still runs here, because an
        auditor may need to reproduce what it said before it was revoked.
        """
        indexed = self.get_model(model_hash)
        # Re-read the stored file (no cache): a re-run reproduces what the store holds now.
        model = load_model(self.store.read_bytes(indexed.model_hash), indexed.model_hash)
        result = model.predict([row])
        if result.probabilities is None or result.classes is None:
            return result.values[0]
        probabilities = dict(zip(map(str, result.classes), result.probabilities[0], strict=True))
        return {"label": result.values[0], "probabilities": probabilities}

    def receipt(self, receipt_id: str) -> StoredReceipt:
        stored = self.receipts.get(receipt_id)
        if stored is None:
            raise Problem(404, "unknown-receipt", f"no receipt {receipt_id} was issued here")
        return stored

    # -- any record ----------------------------------------------------------------------------

    def kind_of(self, record_hash: str) -> str | None:
        """What ``record_hash`` is registered as, or None. A hash the index does not know gets
        one sync first: batches are anchored, and other writers may register, between the
        background follower's rounds."""
        kind = self.index.kind_of(record_hash)
        if kind is None:
            self.sync()
            kind = self.index.kind_of(record_hash)
        return kind

    def revoke(self, record_hash: str, reason: str) -> dict[str, Any]:
        """Revoke a dataset, model or batch on chain and answer with its updated view."""
        kind = self.kind_of(record_hash)
        if kind is None:
            raise Problem(404, "unknown-record", f"no record is registered under {record_hash}")
        with self._writing.hold(record_hash):  # a second revocation fails its simulation
            self.client.revoke(record_hash, reason)
            self.sync()
        return self.record_view(record_hash)

    def record_view(self, record_hash: str) -> dict[str, Any]:
        kind = self.index.kind_of(record_hash)
        if kind == "dataset":
            return {"kind": kind, **self.dataset_view(self.get_dataset(record_hash))}
        if kind == "model":
            return {"kind": kind, **self.model_view(self.get_model(record_hash))}
        if kind == "batch":
            batch = self.index.batch(record_hash)
            assert batch is not None
            return {
                "kind": kind,
                "root": batch.root,
                "model_hash": batch.model_hash,
                "count": batch.count,
                **_chain_fields(batch),
            }
        raise Problem(404, "unknown-record", f"no record is registered under {record_hash}")

    def chain_info(self) -> dict[str, Any]:
        return {
            "backend": self.backend.kind,
            "chain_id": self.client.chain_id(),
            "contract_address": self.client.address,
            "contract_version": self.client.version(),
            "latest_block": self.client.latest_block(),
            "indexed_block": self.index.last_block,
            "registrar": self.account.address,
            "registrar_has_role": self.client.is_registrar(self.account.address),
        }

    def _json_artifact(self, digest: str) -> Any:
        """A JSON document from the store (re-hashed), or None if the store lacks it."""
        if digest == ZERO_HASH or digest not in self.store:
            return None
        return json.loads(self.store.read_bytes(digest))


def _chain_fields(indexed: Any) -> dict[str, Any]:
    revocation = None
    if indexed.revoked:
        revocation = {
            "reason": indexed.revoked_reason,
            "revoker": indexed.revoked_by,
            "tx_hash": indexed.revoked_tx_hash,
            "block_number": indexed.revoked_block,
        }
    return {
        "tx_hash": indexed.tx_hash,
        "block_number": indexed.block_number,
        "registrant": indexed.registrant,
        "registered_at": indexed.registered_at,
        "revoked": indexed.revoked,
        "revocation": revocation,
    }

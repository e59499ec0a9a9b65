"""Attestations of derived datasets and models in the formats other tools verify.

* ``GET /v1/attestation-key``: the P-256 key and its on-chain binding (``ledger/attest/key.py``);
* ``GET /v1/datasets/{h}/attestations``, ``GET /v1/models/{h}/attestations``: the
  ``<artifact>.intoto.jsonl`` file, one DSSE envelope a line (``ledger/attest/intoto.py``),
  built from the registered record, its metadata documents and its chain coordinates;
* ``GET /v1/models/{h}/signature``: the OpenSSF model signature of the model file
  (``model_signing``, elliptic-key method), which ``model_signing verify key`` accepts.

Statements are built from what the chain and the artifact store hold, and signed when asked
for: nothing here is a second source of truth.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from api.service._core import Core
from api.service.datasets import Datasets
from api.service.models import Models
from ledger.attest.intoto import (
    DERIVATION_TYPE,
    TRAINING_TYPE,
    descriptor,
    provenance_statement,
    sign_statement,
)
from ledger.attest.key import AttestationKey, KeyBinding
from ledger.chain.keys import read_password
from ledger.errors import UnknownRecord
from ledger.formats.receipts import ReceiptDomain
from ledger.index.base import IndexedDataset, IndexedModel

__all__ = ["Attestations", "NoAttestation", "open_attestation_key"]

KEY_FILE = "attestation.key"
BINDING_FILE = "attestation-binding.json"


class NoAttestation(UnknownRecord):
    """A raw upload was collected, not built: there is no derivation or training to attest."""

    hint = "attestations exist for derived datasets and models"


def key_password(core: Core) -> str | None:
    """The attestation key is encrypted with the keystore's password when the service runs
    against a real node (as the chain key is); on the embedded chain it is kept readable by its
    owner only, as the chain key is there."""
    if core.settings.chain != "rpc":
        return None
    return read_password("PROVENANCE_KEYSTORE_PASSWORD", "PROVENANCE_KEYSTORE_PASSWORD_FILE")


def open_attestation_key(core: Core) -> tuple[AttestationKey, KeyBinding]:
    """The attestation key of ``core``'s data directory (see :func:`key_password`) and its
    binding, made on first use; the binding is signed once by the service key and kept."""
    data_dir = core.settings.data_dir
    key = AttestationKey.load_or_create(data_dir / KEY_FILE, key_password(core))
    stored = data_dir / BINDING_FILE
    if stored.exists():
        binding = KeyBinding.from_json(json.loads(stored.read_text()))
        if binding.key_digest == key.digest and binding.contract == core.domain.verifying_contract:
            return key, binding
    binding = key.bind(core.account, core.domain, int(time.time()))
    stored.write_text(json.dumps(binding.to_json(), indent=2) + "\n")
    return key, binding


class Attestations:
    """in-toto statements, model signatures and the key that signs them."""

    def __init__(self, core: Core, datasets: Datasets, models: Models) -> None:
        self._core = core
        self._datasets = datasets
        self._models = models
        self._opened: tuple[AttestationKey, KeyBinding] | None = None
        self._lock = threading.Lock()

    def _key(self) -> tuple[AttestationKey, KeyBinding]:
        with self._lock:
            if self._opened is None:
                self._opened = open_attestation_key(self._core)
            return self._opened

    def key(self) -> dict[str, Any]:
        """The public key and its binding (what ``GET /v1/attestation-key`` answers)."""
        key, binding = self._key()
        return {
            "public_key_pem": key.public_pem,
            "key_digest": key.digest,
            "binding": binding.to_json(),
        }

    def dataset(self, content_hash: str) -> str:
        """The ``.intoto.jsonl`` text of a derived dataset."""
        indexed = self._datasets.indexed(content_hash)
        if not indexed.derived:
            raise NoAttestation(f"dataset {content_hash} was uploaded, not derived")
        spec = self._core.json_artifact(indexed.transform_hash)
        statement = provenance_statement(
            subject=descriptor(self._name(indexed), indexed.content_hash),
            build_type=DERIVATION_TYPE,
            external_parameters={"transform": spec, "transformHash": indexed.transform_hash},
            dependencies=[descriptor(f"parent-{i}", p) for i, p in enumerate(indexed.parents)],
            chain={**self._chain(indexed), "rowsRoot": indexed.rows_root},
            finished_on=indexed.registration.registered_at,
        )
        return self._jsonl(statement)

    def model(self, model_hash: str) -> str:
        """The ``.intoto.jsonl`` text of a model."""
        indexed = self._models.indexed(model_hash)
        metadata = self._core.json_artifact(indexed.metadata_hash) or {}
        split = metadata.get("split") or {}
        statement = provenance_statement(
            subject=descriptor(f"model-{indexed.model_hash}.skops", indexed.model_hash),
            build_type=TRAINING_TYPE,
            external_parameters={
                "algorithm": metadata.get("algorithm"),
                "params": metadata.get("requested_params"),
                "features": metadata.get("features"),
                "target": metadata.get("target"),
                "split": {"seed": split.get("seed"), "test_size": split.get("test_size")},
            },
            dependencies=[descriptor(f"dataset-{i}", d) for i, d in enumerate(indexed.datasets)],
            chain=self._chain(indexed),
            finished_on=indexed.registration.registered_at,
            byproducts=[descriptor("training-metadata.json", indexed.metadata_hash)],
        )
        return self._jsonl(statement)

    def model_signature(self, model_hash: str) -> bytes:
        """An OpenSSF model signature (``model_signing``'s sigstore bundle) of the model file,
        signed with the attestation key's own file (``model_signing`` reads keys from files)."""
        from model_signing import signing

        path = self._models.content_path(model_hash)  # re-hashed first
        self._key()  # made and bound
        key_file = self._core.settings.data_dir / KEY_FILE
        password = key_password(self._core)
        # model_signing hands the password to cryptography's PEM loader, which takes bytes.
        secret: Any = password.encode() if password is not None else None
        with tempfile.TemporaryDirectory(prefix="model-signature-") as work:
            signature = Path(work) / "model.sig"
            signing.Config().use_elliptic_key_signer(private_key=key_file, password=secret).sign(
                path, signature
            )
            return signature.read_bytes()

    def _chain(self, indexed: IndexedDataset | IndexedModel) -> dict[str, Any]:
        domain: ReceiptDomain = self._core.domain
        return {
            "chainId": domain.chain_id,
            "contract": domain.verifying_contract,
            "transaction": indexed.registration.tx_hash,
            "block": indexed.registration.block_number,
        }

    def _name(self, indexed: IndexedDataset) -> str:
        metadata = self._core.json_artifact(indexed.metadata_hash) or {}
        return str(metadata.get("name") or f"dataset-{indexed.content_hash}.csv")

    def _jsonl(self, statement: dict[str, Any]) -> str:
        key, _ = self._key()
        return json.dumps(sign_statement(statement, key), separators=(",", ":")) + "\n"

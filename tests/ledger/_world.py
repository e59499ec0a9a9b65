"""The small world that verification tests are played in (see ``test_verify.py``): a raw
dataset, a dataset derived from it, a model trained on the derived one and a second model, their
files in an artifact store, a receipt signer holding ``REGISTRAR_ROLE`` and an anchorer, on a
freshly deployed ledger (embedded chain or anvil)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from ledger.chain.client import LedgerClient
from ledger.errors import UnknownRecord
from ledger.formats.receipt_signing import ReceiptSigner
from ledger.formats.receipts import Receipt, ReceiptDomain, input_hash
from ledger.records import ZERO_HASH, hash_hex
from ledger.storage.artifacts import ArtifactStore
from ledger.verify import (
    Anchoring,
    BlockClaims,
    ChainFacts,
    ReceiptEvidence,
    Report,
    verify_receipt,
    verify_receipts,
)
from ledger.writes.anchoring import Anchorer, ReceiptBook
from ml.hashing import canonical_json
from tests.conftest import Deployed

__all__ = [
    "CLEAN_CSV",
    "MODES",
    "RAW_CSV",
    "ROWS",
    "TRANSFORM",
    "World",
    "make_world",
    "output_of",
    "sha",
    "world",
]

RAW_CSV = b"x1,x2,y\n1,2,3\n1,2,3\n4,,6\n7,8,9\n"
CLEAN_CSV = b"x1,x2,y\n1,2,3\n7,8,9\n"
TRANSFORM = b'{"steps":[{"op":"drop_duplicates"},{"op":"drop_missing"}]}'
ROWS = [{"x1": 1, "x2": 2}, {"x1": 7, "x2": 8}, {"x1": 5, "x2": 5}]


def output_of(row: Mapping[str, Any]) -> float:
    """The "model": what the world's model predicts for a row."""
    return float(row["x1"] + row["x2"])


def sha(data: bytes) -> str:
    return hash_hex(hashlib.sha256(data).digest())


@dataclass
class World:
    deployed: Deployed
    store: ArtifactStore
    book: ReceiptBook
    anchorer: Anchorer
    signer: ReceiptSigner
    registrar_account: LocalAccount
    raw: str
    derived: str
    model: str
    metadata: str
    other_model: str
    mode: str = "single"  # how verify() verifies: see MODES
    issued: list[Receipt] = field(default_factory=list)

    @property
    def client(self) -> LedgerClient:
        return self.deployed.registrar

    @property
    def domain(self) -> ReceiptDomain:
        return self.signer.domain

    def issue(
        self,
        rows: list[dict[str, Any]] = ROWS,
        *,
        model: str | None = None,
        signer: ReceiptSigner | None = None,
        issued_at: int | None = None,
        receipt_format: int = 1,
    ) -> list[Receipt]:
        """Sign a receipt per row and write them to the book, as the service does: one
        signature per row (format 1) or one for them all (format 2)."""
        signer = signer or self.signer
        if receipt_format == 2:
            texts = [canonical_json(row) for row in rows]
            signed = signer.sign_request(
                model_hash=bytes.fromhex((model or self.model)[2:]),
                input_hashes=[hashlib.sha256(text).digest() for text in texts],
                outputs=[output_of(row) for row in rows],
                issued_at=issued_at,
            )
            self.book.add_issued(signed.issued([text.decode() for text in texts]))
            self.issued += signed.receipts()
            return signed.receipts()
        receipts = [
            signer.sign(
                model_hash=model or self.model,
                input_hash=input_hash(row),
                output=output_of(row),
                issued_at=issued_at,
            )
            for row in rows
        ]
        self.book.add(receipts, rows)
        self.issued += receipts
        return receipts

    def anchor(self, anchorer: Anchorer | None = None) -> None:
        results = (anchorer or self.anchorer).flush()
        assert results and all(r.error is None for r in results), results

    def anchoring(self, receipt: Receipt) -> Anchoring | None:
        stored = self.book.get(hash_hex(receipt.receipt_id))
        assert stored is not None
        return Anchoring.from_json(stored.to_json())

    def verify(
        self, receipt: Receipt, *, anchoring: Anchoring | str | None = "book", **kwargs: Any
    ) -> Report:
        found = self.anchoring(receipt) if anchoring == "book" else anchoring
        assert not isinstance(found, str)
        if self.mode == "bulk" and not {"input_row", "rerun"} & kwargs.keys():
            # in the middle of every other receipt issued so far, at one snapshot
            others = [
                ReceiptEvidence(r, self.anchoring(r))
                for r in self.issued
                if r.receipt_id != receipt.receipt_id
            ]
            mine = ReceiptEvidence(
                receipt, found, anchoring_error=kwargs.pop("anchoring_error", None)
            )
            half = len(others) // 2
            items = [*others[:half], mine, *others[half:]]
            return verify_receipts(items, self.facts(), store=self.store, **kwargs)[half]
        if self.mode == "hinted":
            # as an auditor's fresh process does with a bundle: no index, the bundle's blocks
            facts = self.facts()
            facts.hints = None
            claims = self.bundle_claims(receipt, found)
            return verify_receipt(
                receipt, facts, anchoring=found, store=self.store, claims=claims, **kwargs
            )
        return verify_receipt(receipt, self.client, anchoring=found, store=self.store, **kwargs)

    def bundle_claims(self, receipt: Receipt, anchoring: Anchoring | None) -> BlockClaims:
        """The block claims a bundle of ``receipt`` would carry: where its batch, its model and
        the world's datasets were registered (those that are on chain)."""
        client, records = self.client, []
        lookups = [("model", hash_hex(receipt.model_hash), client.model_registration)]
        lookups += [("dataset", d, client.dataset_registration) for d in (self.raw, self.derived)]
        if anchoring is not None:
            lookups.append(("batch", anchoring.batch_id, client.batch_anchoring))
        for kind, key, lookup in lookups:
            try:
                event = lookup(key)
            except UnknownRecord:
                continue
            records.append({"kind": kind, "hash": key, "block_number": event.block_number,
                            "tx_hash": event.tx_hash})  # fmt: skip
        return BlockClaims.from_records(records)

    def facts(self) -> ChainFacts:
        """Chain facts read through the world's client (fresh caches)."""
        return ChainFacts.for_client(self.client)

    def registered_at(self, record_hash: str) -> int:
        """The record's registration time, as the chain stores it."""
        record = self.facts().snapshot().record(record_hash)
        assert record is not None
        return record.registered_at

    def as_registrar(self) -> tuple[LocalAccount, LedgerClient]:
        """A fresh account granted REGISTRAR_ROLE, and a client that writes as it."""
        account = self.deployed.chain.account()
        self.deployed.admin.grant_registrar(account.address)
        return account, self.deployed.as_account(account)


MODES = ("single", "bulk", "hinted")
"""How ``World.verify`` verifies: ``verify_receipt`` with the world's client; one of a bulk
``verify_receipts`` of every receipt issued so far; or as an auditor's fresh process verifies a
bundle (no index, the bundle's block claims)."""


@pytest.fixture
def world(deployed: Deployed, tmp_path: Path) -> Iterator[World]:
    yield from make_world(deployed, tmp_path)


def make_world(deployed: Deployed, tmp_path: Path, mode: str = "single") -> Iterator[World]:
    """Build the world on ``deployed``; its receipts are verified as ``mode`` says."""
    store = ArtifactStore(tmp_path / "artifacts")
    client = deployed.registrar
    raw = store.put_bytes(RAW_CSV)
    derived = store.put_bytes(CLEAN_CSV)
    transform = store.put_bytes(TRANSFORM)
    for content, parents, transform_hash in (
        (raw, [], ZERO_HASH),
        (derived, [raw], transform),
    ):
        client.register_dataset(
            content,
            rows_root=sha(b"rows" + content.encode()),
            row_count=2,
            schema_hash=sha(b"x1,x2,y"),
            parents=parents,
            transform_hash=transform_hash,
        )
    model = store.put_bytes(b"model file: y = x1 + x2")
    metadata = store.put_bytes(json.dumps({"algorithm": "sum", "datasets": [derived]}).encode())
    client.register_model(model, datasets=[derived], metadata_hash=metadata)
    other_model = store.put_bytes(b"model file: y = x1 - x2")
    other_metadata = store.put_bytes(b'{"algorithm": "difference"}')
    client.register_model(other_model, datasets=[raw], metadata_hash=other_metadata)

    registrar_account = deployed.registrar.account
    domain = ReceiptDomain(client.chain_id(), client.address)
    book = ReceiptBook(tmp_path / "receipts.sqlite3")
    anchorer = Anchorer(book, client, batch_size=1000, interval=3600)
    yield World(
        deployed=deployed,
        store=store,
        book=book,
        anchorer=anchorer,
        signer=ReceiptSigner(registrar_account.key, domain),
        registrar_account=registrar_account,
        raw=raw,
        derived=derived,
        model=model,
        metadata=metadata,
        other_model=other_model,
        mode=mode,
    )
    book.close()

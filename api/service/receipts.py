"""Receipts: their anchoring state, anchoring on demand, and evidence bundles."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict

from api.errors import UnknownReceipt
from api.schemas import AnchorPublic, BundlePublic, ReceiptPublic
from api.schemas.accepted import AnchorAcceptedPublic, AnchoredBatchAccepted
from api.schemas.receipts import ReceiptsPublic
from api.service._core import Core
from api.service.verification import Verification
from ledger.errors import UnknownBatch
from ledger.formats.receipt_signing import signing_domain
from ledger.formats.receipts import Receipt, ReceiptDomain
from ledger.index.lineage import lineage, to_prov
from ledger.storage.receipt_book import BatchExport, StoredReceipt
from ledger.writes.anchoring import AnchorResult

__all__ = ["BUNDLE_FORMAT", "EXPORT_CHUNK", "Receipts"]

BUNDLE_FORMAT = "provenance-ledger-bundle/1"
EXPORT_CHUNK = 2_000  # receipts read from the book at a time while a batch is exported


class Receipts:
    """The receipts this service issued."""

    def __init__(self, core: Core, verification: Verification) -> None:
        self._core = core
        self._verification = verification

    def stored(self, receipt_id: str) -> StoredReceipt:
        stored = self._core.receipts.get(receipt_id.lower())
        if stored is None:
            raise UnknownReceipt(f"no receipt {receipt_id} was issued here")
        return stored

    def _signing_domain(self, receipt: Receipt) -> ReceiptDomain:
        """The EIP-712 domain ``receipt`` was signed under: this service's, or, for a receipt
        issued before a contract upgrade, the older generation's that served it."""
        core = self._core
        if len(core.client.generations) == 1:
            return core.domain
        chain_id = core.domain.chain_id
        domains = [ReceiptDomain(chain_id, g.address) for g in reversed(core.client.generations)]
        return signing_domain(receipt, domains) or core.domain

    def get(self, receipt_id: str) -> ReceiptPublic:
        """A receipt with its anchoring: ``pending``, or ``anchored`` with batch, leaf, proof."""
        return ReceiptPublic(**self.stored(receipt_id).to_json())

    def _export(self, batch_id: str) -> tuple[BatchExport, int]:
        """The book as an export and the batch's size; an unknown batch raises UnknownBatch."""
        book = self._core.receipts
        count = book.batch_count(batch_id) if isinstance(book, BatchExport) else None
        if count is None or not isinstance(book, BatchExport):
            raise UnknownBatch(f"no batch {batch_id} was planned here")
        return book, count

    def in_batch(self, batch_id: str, *, offset: int = 0, limit: int = 50) -> ReceiptsPublic:
        """A page of the batch's receipts, in issue order, as ``get`` shows each."""
        book, count = self._export(batch_id)
        documents = book.batch_documents(batch_id, offset, limit)
        return ReceiptsPublic.model_construct(  # the book's own rows: valid by construction
            data=[ReceiptPublic.model_construct(**d) for d in documents], count=count
        )

    def export(self, batch_id: str) -> Iterator[bytes]:
        """Every receipt of the batch as JSON lines, read from the book a chunk at a time (a
        batch may hold a hundred thousand); the batch is looked up before the first line."""
        book, count = self._export(batch_id)

        def lines() -> Iterator[bytes]:
            for offset in range(0, count, EXPORT_CHUNK):
                documents = book.batch_documents(batch_id, offset, EXPORT_CHUNK)
                yield "".join(
                    json.dumps(d, separators=(",", ":")) + "\n" for d in documents
                ).encode()

        return lines()

    def anchor_now(self, *, wait: str = "final") -> AnchorPublic | AnchorAcceptedPublic:
        """Anchor every pending receipt now instead of waiting for the batch size or interval.

        ``wait`` as for any write: ``final`` (each batch final and marked anchored),
        ``included`` (each in a block, state ``included``; its receipts show their anchoring
        once final), or ``accepted`` (RPC chains, where writes are journaled: the batches are
        planned durably and queued, answered at once; nothing pending: the usual answer)."""
        core = self._core
        results: list[AnchorResult]
        if wait == "accepted" and core.writes.journal is not None:
            planned = core.anchorer.plan_now()
            if planned:
                batches = [
                    AnchoredBatchAccepted(
                        batch_id=root, model_hash=model, count=count, url=f"/v1/records/{root}"
                    )
                    for root, model, count in planned
                ]
                return AnchorAcceptedPublic(
                    batches=batches, receipts=core.receipts.counts(), url=batches[0].url
                )
            results = []
        elif wait == "included":
            results = core.anchorer.flush_included()
        else:
            results = core.anchorer.flush()
        core.sync()  # so lineage and revocation see the new batches at once
        return AnchorPublic(
            batches=[
                {
                    "batch_id": r.root,
                    "model_hash": r.model_hash,
                    "count": r.count,
                    "state": r.state,
                    "tx_hash": r.tx_hash,
                    "block_number": r.block_number,
                    "error": r.error,
                }
                for r in results
            ],
            receipts=core.receipts.counts(),
        )

    def bundle(self, receipt_id: str) -> BundlePublic:
        """One self-contained document an auditor can archive: the receipt and its proof, where
        the ledger lives, the chain coordinates of its whole lineage, the lineage as PROV-JSON
        and the verification report at the time. Everything in it can be re-checked against
        any node later with ``provenance verify BUNDLE.json --rpc-url URL``."""
        core = self._core
        stored = self.stored(receipt_id)
        receipt = stored.to_json()
        subject = receipt["batch_id"] if stored.status == "anchored" else receipt["model_hash"]
        graph = lineage(core.index, subject, "up")
        client = core.client
        return BundlePublic(
            format=BUNDLE_FORMAT,
            created_at=int(time.time()),
            ledger={
                "chain_id": client.chain_id(),
                "contract": client.address,
                "contract_version": client.version(),
                "deploy_block": client.deploy_block,
            },
            receipt=receipt,
            input=stored.input,
            eip712_domain=self._signing_domain(stored.receipt).to_eip712(),
            records=[
                asdict(node) for node in graph.nodes if node.kind in ("dataset", "model", "batch")
            ],
            lineage=to_prov(graph),
            verification=self._verification.receipt(receipt, input_row=stored.input),
        )

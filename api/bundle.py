"""Evidence bundles: one self-contained JSON document an auditor can archive with a receipt.

It holds the receipt and its inclusion proof, where the ledger lives (chain id, contract), the
chain coordinates of every record in the receipt's lineage, the lineage as W3C PROV-JSON, and
the verification report at the time the bundle was made. Everything in it can be re-checked
against any node later with ``provenance verify BUNDLE.json --rpc-url URL``.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from api.service import ProvenanceService
from api.verification import check_receipt
from ledger.lineage import lineage, to_prov

__all__ = ["BUNDLE_FORMAT", "make_bundle"]

BUNDLE_FORMAT = "provenance-ledger-bundle/1"


def make_bundle(service: ProvenanceService, receipt_id: str) -> dict[str, Any]:
    """The evidence bundle of one receipt (anchored or still pending)."""
    stored = service.receipt(receipt_id)
    receipt = stored.to_json()
    subject = receipt["batch_id"] if stored.status == "anchored" else receipt["model_hash"]
    graph = lineage(service.index, subject, "up")
    return {
        "format": BUNDLE_FORMAT,
        "created_at": int(time.time()),
        "ledger": {
            "chain_id": service.client.chain_id(),
            "contract": service.client.address,
            "contract_version": service.client.version(),
            "deploy_block": service.client.deploy_block,
        },
        "receipt": receipt,
        "input": stored.input,
        "eip712_domain": service.domain.to_eip712(),
        "records": [
            asdict(node) for node in graph.nodes if node.kind in ("dataset", "model", "batch")
        ],
        "lineage": to_prov(graph),
        "verification": check_receipt(service, receipt, input_row=stored.input).to_json(),
    }

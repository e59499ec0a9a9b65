"""Glue between the service and ``ledger.verify``: what the server can add to a verification
(its artifact store, a re-run of the model, the receipt's anchoring from its receipt book)."""

from __future__ import annotations

from typing import Any

from api.problems import Problem
from api.service import ProvenanceService, rows_root
from ledger.receipts import Receipt, ReceiptError
from ledger.verify import Anchoring, Report, verify_dataset_bytes, verify_model, verify_receipt
from ml.datasets import parse_dataset
from ml.hashing import to_hex
from ml.training import train

__all__ = ["check_dataset", "check_model", "check_receipt"]


def check_receipt(
    service: ProvenanceService,
    document: dict[str, Any],
    *,
    input_row: dict[str, Any] | None = None,
    rerun: bool = False,
) -> Report:
    """Verify a receipt document (the fields the service returned, anchored or not)."""
    try:
        receipt = Receipt.model_validate(
            {k: document.get(k) for k in Receipt.model_fields if k in document}
        )
        anchoring = Anchoring.from_json(document)
    except (ValueError, ReceiptError) as exc:
        raise Problem(422, "malformed-receipt", f"not a receipt: {exc}") from None
    anchoring_error = None
    if anchoring is None:
        stored = service.receipts.get("0x" + receipt.receipt_id.hex())
        if stored is not None and stored.status == "anchored":
            anchoring = Anchoring.from_json(stored.to_json())
        elif stored is not None and stored.status == "failed":
            anchoring_error = stored.error or "the batch was refused"
    model_hash = "0x" + receipt.model_hash.hex()

    def run_again(row: dict[str, Any]) -> Any:
        return service.reproduce_output(model_hash, row)

    return verify_receipt(
        receipt,
        service.client,
        anchoring=anchoring,
        store=service.store,
        input_row=input_row,
        rerun=run_again if rerun else None,
        anchoring_error=anchoring_error,
    )


def check_model(service: ProvenanceService, model_hash: str, *, retrain: bool) -> Report:
    """Verify a model; with ``retrain``, train it again from the registered dataset and
    metadata and compare the hashes."""

    def again() -> str:
        indexed = service.get_model(model_hash)
        metadata = service.model_view(indexed)["metadata"]
        trained = train(
            service.load_dataset(indexed.datasets[0]),
            algorithm=metadata["algorithm"],
            target=metadata["target"],
            features=metadata["features"],
            params=metadata.get("requested_params") or {},
            test_size=metadata["split"]["test_size"],
            seed=metadata["split"]["seed"],
        )
        return to_hex(trained.model_hash)

    return verify_model(
        model_hash, service.client, store=service.store, retrain=again if retrain else None
    )


def check_dataset(service: ProvenanceService, data: bytes) -> Report:
    """Is this exact file registered, and is its lineage sound?"""
    return verify_dataset_bytes(
        data,
        service.client,
        rows_root=lambda raw: rows_root(parse_dataset(raw, limits=service.limits)),
    )

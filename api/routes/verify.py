"""Verification of receipts (one, or many at once), models and dataset files against the chain.

Expensive work (bulk verification, re-running a prediction, retraining a model) needs at least an
auditor key, even while public reads are open, and runs in the app's bounded worker pool: past
its bound the answer is 429 with ``Retry-After``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile

from api.auth import require
from api.deps import AuditorAccess, HashPath, ReadAccess, ServiceDep, WorkDep
from api.schemas import ReceiptVerifyCreate, ReportPublic
from api.schemas.verify import ReceiptsReportPublic, ReceiptsVerifyCreate

router = APIRouter(prefix="/verify", tags=["verify"])


@router.post("/receipt", response_model=ReportPublic)
def verify_receipt(
    service: ServiceDep, key: ReadAccess, work: WorkDep, body: ReceiptVerifyCreate
) -> ReportPublic:
    """Signature, inclusion proof, anchoring, model and training lineage, times, artifacts;
    ``rerun`` (an auditor key) also runs the stored model on the input again."""
    if not body.rerun:
        return service.verify.receipt(body.receipt, input_row=body.input)
    return work.run(
        "rerun",
        require(key, "auditor"),
        lambda _job: service.verify.receipt(body.receipt, input_row=body.input, rerun=True),
    )


@router.post("/receipts", response_model=ReceiptsReportPublic)
def verify_receipts(
    service: ServiceDep, key: AuditorAccess, work: WorkDep, body: ReceiptsVerifyCreate
) -> ReceiptsReportPublic:
    """Many receipts at one snapshot of the chain (at most ``max_verify_receipts``): one report
    each, in the order given, and how many are valid, invalid and pending. Chain facts are
    read once per batch and per model; a malformed receipt is an invalid report."""
    return work.run("verify-receipts", key, lambda _job: service.verify.receipts(body.receipts))


@router.post("/receipts/file", response_model=ReceiptsReportPublic)
def verify_receipts_file(
    service: ServiceDep,
    key: AuditorAccess,
    work: WorkDep,
    file: Annotated[
        UploadFile, File(description='a JSON list of receipts, {"receipts": [...]} or JSON lines')
    ],
) -> ReceiptsReportPublic:
    """As ``POST /verify/receipts``, for a file of receipts (an upload may be larger than a JSON
    body: ``max_upload_bytes``), such as a batch's ``GET /batches/{id}/receipts`` export."""
    return work.run("verify-receipts", key, lambda _job: service.verify.receipts_file(file.file))


@router.get("/models/{model_hash}", response_model=ReportPublic)
def verify_model(
    service: ServiceDep,
    key: ReadAccess,
    work: WorkDep,
    model_hash: HashPath,
    retrain: Annotated[bool, Query()] = False,
) -> ReportPublic:
    """Registration, revocation, artifacts, lineage; ``retrain`` (an auditor key) trains the
    model again and checks that the hash is the same."""
    if not retrain:
        return service.verify.model(model_hash)
    return work.run(
        "retrain",
        require(key, "auditor"),
        lambda _job: service.verify.model(model_hash, retrain_model=True),
    )


@router.post("/dataset", response_model=ReportPublic)
def verify_dataset(
    service: ServiceDep,
    _: ReadAccess,
    file: Annotated[UploadFile, File(description="the dataset file to check")],
) -> ReportPublic:
    """Is this exact file registered, are its rows the registered rows, is its lineage sound?"""
    return service.verify.dataset(file.file)

"""Verification of receipts, models and dataset files against the chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile

from api.deps import HashPath, ReadAccess, ServiceDep
from api.schemas import ReceiptVerifyCreate, ReportPublic

router = APIRouter(prefix="/verify", tags=["verify"])


@router.post("/receipt", response_model=ReportPublic)
def verify_receipt(service: ServiceDep, _: ReadAccess, body: ReceiptVerifyCreate) -> ReportPublic:
    """Signature, inclusion proof, anchoring, model and training lineage, artifacts."""
    return service.verify.receipt(body.receipt, input_row=body.input, rerun=body.rerun)


@router.get("/models/{model_hash}", response_model=ReportPublic)
def verify_model(
    service: ServiceDep,
    _: ReadAccess,
    model_hash: HashPath,
    retrain: Annotated[bool, Query()] = False,
) -> ReportPublic:
    """Registration, revocation, artifacts, lineage; ``retrain`` checks reproducibility."""
    return service.verify.model(model_hash, retrain_model=retrain)


@router.post("/dataset", response_model=ReportPublic)
def verify_dataset(
    service: ServiceDep,
    _: ReadAccess,
    file: Annotated[UploadFile, File(description="the dataset file to check")],
) -> ReportPublic:
    """Is this exact file registered, are its rows the registered rows, is its lineage sound?"""
    return service.verify.dataset(file.file)

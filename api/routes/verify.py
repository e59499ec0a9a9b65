"""Verification of receipts, models and dataset files against the chain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Query, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from api.deps import HashPath, ServiceDep, SettingsDep
from api.problems import Problem
from api.verification import check_dataset, check_model, check_receipt

router = APIRouter(prefix="/verify", tags=["verify"])


class ReceiptVerifyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    receipt: dict[str, Any] = Field(description="a receipt as the service returned it")
    input: dict[str, Any] | None = Field(None, description="the input row, to check input_hash")
    rerun: bool = Field(False, description="re-run the stored model on the input")


@router.post("/receipt")
def verify_receipt(service: ServiceDep, body: ReceiptVerifyCreate) -> dict:
    """Signature, inclusion proof, anchoring, model and training lineage, artifacts."""
    if body.rerun and body.input is None:
        raise Problem(422, "input-required", "rerun needs the input row")
    return check_receipt(service, body.receipt, input_row=body.input, rerun=body.rerun).to_json()


@router.get("/models/{model_hash}")
def verify_model(
    service: ServiceDep, model_hash: HashPath, retrain: Annotated[bool, Query()] = False
) -> dict:
    """Registration, revocation, artifacts, lineage; ``retrain`` checks reproducibility."""
    service.get_model(model_hash)
    return check_model(service, model_hash.lower(), retrain=retrain).to_json()


@router.post("/dataset")
def verify_dataset(
    service: ServiceDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="the dataset file to check")],
) -> dict:
    """Is this exact file registered, are its rows the registered rows, is its lineage sound?"""
    data = file.file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise Problem(
            413, "too-large", "the file exceeds max_upload_bytes", limit="max_upload_bytes"
        )
    return check_dataset(service, data).to_json()

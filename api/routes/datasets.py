"""Datasets: register (upload), list, read, download, row proofs, derive (clean)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Response, UploadFile
from fastapi.responses import FileResponse

from api.deps import (
    HashPath,
    Limit,
    Offset,
    ReadAccess,
    RegistrarAccess,
    ServiceDep,
    answer_written,
)
from api.schemas import DatasetPublic, DatasetsPublic, DeriveCreate, RowProofPublic

router = APIRouter(prefix="/datasets", tags=["datasets"])


@router.post(
    "",
    status_code=201,
    response_model=DatasetPublic,
    responses={200: {"model": DatasetPublic, "description": "already registered"}},
)
def register_dataset(
    service: ServiceDep,
    _: RegistrarAccess,
    response: Response,
    file: Annotated[UploadFile, File(description="a CSV file (at most max_upload_bytes)")],
    name: Annotated[str | None, Form(description="at most max_name_chars")] = None,
    description: Annotated[str | None, Form(description="at most max_description_chars")] = None,
) -> DatasetPublic:
    """Upload a CSV; it is validated, hashed, stored and registered on chain."""
    written = service.datasets.register(file.file, name=name, description=description)
    return answer_written(written, response)


@router.get("", response_model=DatasetsPublic)
def list_datasets(
    service: ServiceDep, _: ReadAccess, offset: Offset = 0, limit: Limit = 50
) -> DatasetsPublic:
    """Registered datasets, newest first."""
    return service.datasets.list(offset=offset, limit=limit)


@router.get("/{content_hash}", response_model=DatasetPublic)
def get_dataset(service: ServiceDep, _: ReadAccess, content_hash: HashPath) -> DatasetPublic:
    return service.datasets.get(content_hash)


@router.get(
    "/{content_hash}/content",
    response_class=FileResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def get_dataset_content(service: ServiceDep, _: ReadAccess, content_hash: HashPath) -> FileResponse:
    """The dataset file, byte for byte (re-hashed before it is sent)."""
    path = service.datasets.content_path(content_hash)
    return FileResponse(path, media_type="text/csv", filename=f"{content_hash.lower()}.csv")


@router.get("/{content_hash}/rows/{index}/proof", response_model=RowProofPublic)
def get_row_proof(
    service: ServiceDep,
    _: ReadAccess,
    content_hash: HashPath,
    index: Annotated[int, Path(ge=0)],
) -> RowProofPublic:
    """One row with its Merkle inclusion proof against the on-chain rows root."""
    return service.datasets.row_proof(content_hash, index)


@router.post(
    "/{content_hash}/derive",
    status_code=201,
    response_model=DatasetPublic,
    responses={200: {"model": DatasetPublic, "description": "result already registered"}},
)
def derive_dataset(
    service: ServiceDep,
    _: RegistrarAccess,
    content_hash: HashPath,
    body: DeriveCreate,
    response: Response,
) -> DatasetPublic:
    """Clean a dataset with declarative steps; the result is registered with its lineage."""
    return answer_written(service.datasets.derive(content_hash, body.steps), response)

"""Datasets: register (upload), list, read, download, row proofs, derive (clean)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Response, UploadFile
from fastapi.responses import FileResponse

from api.deps import HashPath, Limit, Offset, ServiceDep, SettingsDep, answer_written
from api.problems import Problem
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
    settings: SettingsDep,
    response: Response,
    file: Annotated[UploadFile, File(description="a CSV file")],
    name: Annotated[str | None, Form()] = None,
    description: Annotated[str | None, Form()] = None,
) -> dict:
    """Upload a CSV; it is validated, hashed, stored and registered on chain."""
    for field, value, limit in (
        ("name", name, settings.max_name_chars),
        ("description", description, settings.max_description_chars),
    ):
        if value is not None and len(value) > limit:
            raise Problem(
                422, "field-too-long", f"{field} has {len(value)} characters, at most {limit}",
                limit=f"max_{field}_chars",
            )  # fmt: skip
    written = service.register_upload(file.file, name=name, description=description)
    return answer_written(written, response)


@router.get("", response_model=DatasetsPublic)
def list_datasets(
    service: ServiceDep,
    offset: Offset = 0,
    limit: Limit = 50,
) -> dict:
    items, count = service.index.datasets(offset=offset, limit=limit)
    return {"data": [service.dataset_view(d) for d in items], "count": count}


@router.get("/{content_hash}", response_model=DatasetPublic)
def get_dataset(service: ServiceDep, content_hash: HashPath) -> dict:
    return service.dataset_view(service.get_dataset(content_hash))


@router.get("/{content_hash}/content", response_class=FileResponse)
def get_dataset_content(service: ServiceDep, content_hash: HashPath) -> FileResponse:
    """The dataset file, byte for byte (re-hashed before it is sent)."""
    indexed = service.get_dataset(content_hash)
    path = service.store.verified_path(indexed.content_hash)
    return FileResponse(path, media_type="text/csv", filename=f"{indexed.content_hash}.csv")


@router.get("/{content_hash}/rows/{index}/proof", response_model=RowProofPublic)
def get_row_proof(
    service: ServiceDep, content_hash: HashPath, index: Annotated[int, Path(ge=0)]
) -> dict:
    """One row with its Merkle inclusion proof against the on-chain rows root."""
    return service.row_proof(content_hash, index)


@router.post(
    "/{content_hash}/derive",
    status_code=201,
    response_model=DatasetPublic,
    responses={200: {"model": DatasetPublic, "description": "result already registered"}},
)
def derive_dataset(
    service: ServiceDep, content_hash: HashPath, body: DeriveCreate, response: Response
) -> dict:
    """Clean a dataset with declarative steps; the result is registered with its lineage."""
    written = service.derive(content_hash, body.steps)
    return answer_written(written, response)

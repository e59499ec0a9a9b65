"""Datasets: register (upload one, or a batch), list, read, download, row proofs, derive."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Response, UploadFile
from fastapi.responses import FileResponse, JSONResponse

from api.deps import (
    HashPath,
    Limit,
    Offset,
    ReadAccess,
    RegistrarAccess,
    ServiceDep,
    WaitQuery,
    answer_accepted,
    answer_written,
)
from api.problems import PROBLEM_BASE
from api.problems import _from_exception as problem_for  # the one table, as api/jobs.py uses it
from api.routes._lean_upload import LeanUploadRoute
from api.schemas import DatasetPublic, DatasetsPublic, DeriveCreate, RowProofPublic
from api.schemas.accepted import DatasetBatchAccepted
from api.schemas.records import (
    DatasetAcceptedPublic,
    DatasetBatchPublic,
    DatasetBatchRefused,
    DatasetBatchRegistered,
)
from api.service.datasets import BatchEntry

router = APIRouter(prefix="/datasets", tags=["datasets"])


def register_dataset(
    service: ServiceDep,
    _: RegistrarAccess,
    response: Response,
    file: Annotated[UploadFile, File(description="a CSV file (at most max_upload_bytes)")],
    name: Annotated[str | None, Form(description="at most max_name_chars")] = None,
    description: Annotated[str | None, Form(description="at most max_description_chars")] = None,
    wait: WaitQuery = "final",
) -> DatasetPublic | JSONResponse:
    """Upload a CSV; it is validated, hashed, stored and registered on chain. Without a name,
    the dataset is named after the uploaded file's name."""
    written = service.datasets.register(
        file.file,
        name=name if name is not None else file.filename,
        description=description,
        file_name=file.filename,
        wait=wait,
    )
    if isinstance(written, DatasetAcceptedPublic):
        return answer_accepted(written)
    return answer_written(written, response)


# A well-formed upload skips FastAPI's dependency solving; any other is FastAPI's, answered as
# before (api/routes/_lean_upload.py). The signature above is still what the OpenAPI document says.
router.add_api_route(
    "",
    register_dataset,
    methods=["POST"],
    status_code=201,
    response_model=DatasetPublic,
    responses={
        200: {"model": DatasetPublic, "description": "already registered"},
        202: {"model": DatasetAcceptedPublic, "description": "durably queued (wait=accepted)"},
    },
    route_class_override=LeanUploadRoute,
)


@router.post(
    "/batch",
    response_model=DatasetBatchPublic,
    form_limits={"max_files": 10_000},  # the setting max_batch_files (at most 10,000) decides
)
def register_datasets(
    service: ServiceDep,
    _: RegistrarAccess,
    file: Annotated[
        list[UploadFile],
        File(description="CSV files, one `file` part each (at most max_batch_files)"),
    ],
    wait: WaitQuery = "final",
) -> DatasetBatchPublic:
    """Upload several CSVs; they are registered in as few transactions as a block allows.

    Each file is answered on its own, in the order sent: 201 with its record, 200 if its bytes
    were registered before (nothing is sent for it), or its own problem (too large, malformed),
    which stores and sends nothing and never fails the other files. With ``wait=accepted``
    (RPC chains), a new file is answered 202 with its URL to poll once durably queued."""
    files = [(part.filename or "", part.file) for part in file]
    entries = service.datasets.register_many(files, wait=wait)
    data = [_batch_entry(entry) for entry in entries]
    return DatasetBatchPublic(data=data, count=len(data))


def _batch_entry(
    entry: BatchEntry,
) -> DatasetBatchRegistered | DatasetBatchAccepted | DatasetBatchRefused:
    if entry.accepted is not None:
        return DatasetBatchAccepted(
            file=entry.file, content_hash=entry.accepted, url=f"/v1/datasets/{entry.accepted}"
        )
    if entry.written is not None:
        status = 201 if entry.written.created else 200
        fields = entry.written.view.model_dump()
        return DatasetBatchRegistered(**fields, file=entry.file, status=status)
    assert entry.error is not None
    problem = problem_for(entry.error)
    return DatasetBatchRefused(
        file=entry.file,
        type=PROBLEM_BASE + problem.slug,
        title=HTTPStatus(problem.status).phrase,
        status=problem.status,
        detail=problem.detail,
        limit=problem.extra.get("limit"),
    )


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
    responses={
        200: {"model": DatasetPublic, "description": "result already registered"},
        202: {"model": DatasetAcceptedPublic, "description": "durably queued (wait=accepted)"},
    },
)
def derive_dataset(
    service: ServiceDep,
    _: RegistrarAccess,
    content_hash: HashPath,
    body: DeriveCreate,
    response: Response,
    wait: WaitQuery = "final",
) -> DatasetPublic | JSONResponse:
    """Clean a dataset with declarative steps; the result is registered with its lineage."""
    written = service.datasets.derive(content_hash, body.steps, wait=wait)
    if isinstance(written, DatasetAcceptedPublic):
        return answer_accepted(written)
    return answer_written(written, response)

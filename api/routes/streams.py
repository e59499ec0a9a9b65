"""Streams of sensor readings: define, ingest (HTTP; MQTT in :mod:`api.mqtt`), seal, versions,
dead letters, a reading's proof."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import (
    Limit,
    Offset,
    ReadAccess,
    RegistrarAccess,
    ServiceDep,
    WaitQuery,
    answer_accepted,
    answer_written,
)
from api.schemas import HASH_PATTERN
from api.schemas.accepted import SealAcceptedPublic
from api.schemas.streams import (
    STREAM_NAME_PATTERN,
    DeadLettersPublic,
    IngestPublic,
    ReadingProofPublic,
    StreamCreate,
    StreamPublic,
    StreamsPublic,
    VersionsPublic,
)

router = APIRouter(prefix="/streams", tags=["streams"])

StreamPath = Annotated[str, Path(pattern=STREAM_NAME_PATTERN, description="the stream's name")]
ReadingIdPath = Annotated[str, Path(min_length=1, max_length=256, description="a reading's id")]

_READINGS_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {"type": "array", "items": {"type": "object"}},
            "example": [{"id": "m3-0001", "temperature": 71.5, "line": "3"}],
        },
    },
    "description": "a JSON array of readings, or JSON lines (one reading a line, any "
    "content type such as application/x-ndjson)",
}


@router.post(
    "",
    status_code=201,
    response_model=StreamPublic,
    responses={200: {"model": StreamPublic, "description": "defined before, identically"}},
)
def create_stream(
    service: ServiceDep, _: RegistrarAccess, body: StreamCreate, response: Response
) -> StreamPublic:
    """Define a stream: its columns (and types) and when it seals (every ``seal_readings``
    readings or ``seal_seconds`` seconds, whichever comes first)."""
    return answer_written(service.streams.create(body), response)


@router.get("", response_model=StreamsPublic)
def list_streams(
    service: ServiceDep, _: ReadAccess, offset: Offset = 0, limit: Limit = 50
) -> StreamsPublic:
    """Streams, by name."""
    return service.streams.list(offset=offset, limit=limit)


@router.get("/{name}", response_model=StreamPublic)
def get_stream(service: ServiceDep, _: ReadAccess, name: StreamPath) -> StreamPublic:
    """A stream's definition and figures: readings, pending, rate, last seal, dead letters."""
    return service.streams.get(name)


@router.post(
    "/{name}/readings",
    status_code=202,
    response_model=IngestPublic,
    openapi_extra={"requestBody": _READINGS_BODY},
)
async def send_readings(
    service: ServiceDep, _: RegistrarAccess, name: StreamPath, request: Request
) -> IngestPublic:
    """Readings as a JSON array or JSON lines, each an object of the stream's columns with an
    optional ``id``. Answered (202) once they are stored durably; a reading whose id was seen is
    stored once; a bad reading goes to the dead letters with its reason (listed in ``refused``)
    and never keeps the others out. A body that cannot be split into readings stores nothing."""
    body = await request.body()
    return await run_in_threadpool(service.streams.ingest_body, name, body)


@router.post(
    "/{name}/seal",
    response_model=VersionsPublic,
    responses={202: {"model": SealAcceptedPublic, "description": "durably queued (wait=accepted)"}},
)
def seal_stream(
    service: ServiceDep, _: RegistrarAccess, name: StreamPath, wait: WaitQuery = "final"
) -> VersionsPublic | JSONResponse:
    """Seal the waiting readings now; answers the versions made (none if nothing waited).
    ``wait=included`` answers once each chunk and version is in a block; ``wait=accepted`` once
    the first chunk is planned (202, with the versions' URL to poll), the sealer doing the rest."""
    answer = service.streams.seal(name, wait=wait)
    if isinstance(answer, SealAcceptedPublic):
        return answer_accepted(answer)
    return answer


@router.get("/{name}/versions", response_model=VersionsPublic)
def list_versions(
    service: ServiceDep,
    _: ReadAccess,
    name: StreamPath,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> VersionsPublic:
    """The stream's versions, newest first: each a dataset hash with its readings and chunks."""
    return service.streams.versions(name, offset=offset, limit=limit)


@router.get("/{name}/dead-letters", response_model=DeadLettersPublic)
def list_dead_letters(
    service: ServiceDep, _: ReadAccess, name: StreamPath, offset: Offset = 0, limit: Limit = 50
) -> DeadLettersPublic:
    """Readings refused, newest first, each with its reason."""
    return service.streams.dead_letters(name, offset=offset, limit=limit)


@router.get("/{name}/readings/{reading_id}/proof", response_model=ReadingProofPublic)
def get_reading_proof(
    service: ServiceDep,
    _: ReadAccess,
    name: StreamPath,
    reading_id: ReadingIdPath,
    version: Annotated[
        str | None, Query(pattern=HASH_PATTERN, description="a version (default: the latest)")
    ] = None,
) -> ReadingProofPublic:
    """A sealed reading's row in its chunk, proved against the chunk's on-chain rows root, and
    the chunk's place in the version, proved against the version's on-chain rows root."""
    return service.streams.proof(name, reading_id, version)

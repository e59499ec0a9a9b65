"""Models: train, list, read, download, predict."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse

from api.deps import HashPath, Limit, Offset, ServiceDep, answer_written
from api.schemas import ModelCreate, ModelPublic, ModelsPublic, PredictCreate, PredictPublic

router = APIRouter(prefix="/models", tags=["models"])


@router.post(
    "",
    status_code=201,
    response_model=ModelPublic,
    responses={200: {"model": ModelPublic, "description": "same model already registered"}},
)
def train_model(service: ServiceDep, body: ModelCreate, response: Response) -> dict:
    """Train deterministically; the same inputs always give the same model hash."""
    written = service.train_model(body.model_dump())
    return answer_written(written, response)


@router.get("", response_model=ModelsPublic)
def list_models(
    service: ServiceDep,
    offset: Offset = 0,
    limit: Limit = 50,
) -> dict:
    items, count = service.index.models(offset=offset, limit=limit)
    return {"data": [service.model_view(m) for m in items], "count": count}


@router.get("/{model_hash}", response_model=ModelPublic)
def get_model(service: ServiceDep, model_hash: HashPath) -> dict:
    return service.model_view(service.get_model(model_hash))


@router.get("/{model_hash}/content", response_class=FileResponse)
def get_model_content(service: ServiceDep, model_hash: HashPath) -> FileResponse:
    """The model file (a zip of JSON and arrays; no code runs when it is loaded)."""
    indexed = service.get_model(model_hash)
    path = service.store.verified_path(indexed.model_hash)
    return FileResponse(path, media_type="application/zip", filename=f"{indexed.model_hash}.model")


@router.post("/{model_hash}/predict", response_model=PredictPublic)
def predict(service: ServiceDep, model_hash: HashPath, body: PredictCreate) -> dict:
    """Predict for each row; every prediction gets a signed receipt."""
    return service.predict(model_hash, body.rows)

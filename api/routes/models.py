"""Models: train, list, read, download, predict."""

from __future__ import annotations

from fastapi import APIRouter, Response
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
from api.routes._lean_predict import LeanPredictRoute
from api.schemas import ModelCreate, ModelPublic, ModelsPublic, PredictCreate, PredictPublic
from api.schemas.accepted import ModelAcceptedPublic

router = APIRouter(prefix="/models", tags=["models"])
JSON = "application/json"


@router.post(
    "",
    status_code=201,
    response_model=ModelPublic,
    responses={
        200: {"model": ModelPublic, "description": "same model already registered"},
        202: {"model": ModelAcceptedPublic, "description": "durably queued (wait=accepted)"},
    },
)
def train_model(
    service: ServiceDep,
    _: RegistrarAccess,
    body: ModelCreate,
    response: Response,
    wait: WaitQuery = "final",
) -> ModelPublic | JSONResponse:
    """Train deterministically; the same inputs always give the same model hash. The answer
    comes after the training whatever ``wait`` says; ``wait`` says how long the registration
    may take."""
    written = service.models.train(body, wait=wait)
    if isinstance(written, ModelAcceptedPublic):
        return answer_accepted(written)
    return answer_written(written, response)


@router.get("", response_model=ModelsPublic)
def list_models(
    service: ServiceDep, _: ReadAccess, offset: Offset = 0, limit: Limit = 50
) -> ModelsPublic:
    """Registered models, newest first."""
    return service.models.list(offset=offset, limit=limit)


@router.get("/{model_hash}", response_model=ModelPublic)
def get_model(service: ServiceDep, _: ReadAccess, model_hash: HashPath) -> ModelPublic:
    return service.models.get(model_hash)


@router.get(
    "/{model_hash}/content",
    response_class=FileResponse,
    responses={
        200: {
            "description": "the model file, a zip archive",
            "content": {
                "application/zip": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
def get_model_content(service: ServiceDep, _: ReadAccess, model_hash: HashPath) -> FileResponse:
    """The model file (a zip of JSON and arrays; no code runs when it is loaded)."""
    path = service.models.content_path(model_hash)
    return FileResponse(path, media_type="application/zip", filename=f"{model_hash.lower()}.model")


def predict(
    service: ServiceDep, _: RegistrarAccess, model_hash: HashPath, body: PredictCreate
) -> Response:
    """Predict for each row; every prediction gets a signed receipt (format 2: one signature
    over the Merkle root of the request's receipts, each receipt with its proof)."""
    # Written by the service from the texts it stored (api/service/predictions.py).
    return Response(service.predictions.predict(model_hash, body.rows), media_type=JSON)


# A well-formed body skips FastAPI's validation; any other is validated and refused as before
# (api/routes/_lean_predict.py). The signature above is still what the OpenAPI document says.
router.add_api_route(
    "/{model_hash}/predict",
    predict,
    methods=["POST"],
    response_model=PredictPublic,
    route_class_override=LeanPredictRoute,
)

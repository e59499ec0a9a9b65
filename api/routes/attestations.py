"""Attestations other tools verify: the P-256 key and its chain binding, in-toto/SLSA
statements of derived datasets and models, OpenSSF model signatures."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import HashPath, ReadAccess, ServiceDep
from api.schemas.attestations import AttestationKeyPublic

router = APIRouter(tags=["attestations"])

JSONL = "application/jsonl"
_JSONL_RESPONSE = {
    200: {
        "content": {JSONL: {"schema": {"type": "string"}}},
        "description": "one DSSE envelope (in-toto Statement v1, SLSA Provenance v1) a line",
    }
}


@router.get("/attestation-key", response_model=AttestationKeyPublic)
def attestation_key(service: ServiceDep, _: ReadAccess) -> AttestationKeyPublic:
    """The P-256 key that signs attestations, and the registrar's binding of it."""
    return AttestationKeyPublic.model_validate(service.attestations.key())


def _jsonl(text: str, name: str) -> Response:
    disposition = f'attachment; filename="{name}.intoto.jsonl"'
    return Response(text, media_type=JSONL, headers={"Content-Disposition": disposition})


@router.get(
    "/datasets/{content_hash}/attestations", response_class=Response, responses=_JSONL_RESPONSE
)
def dataset_attestations(service: ServiceDep, _: ReadAccess, content_hash: HashPath) -> Response:
    """``<dataset>.intoto.jsonl``: how a derived dataset was made, signed."""
    return _jsonl(service.attestations.dataset(content_hash), content_hash.lower())


@router.get("/models/{model_hash}/attestations", response_class=Response, responses=_JSONL_RESPONSE)
def model_attestations(service: ServiceDep, _: ReadAccess, model_hash: HashPath) -> Response:
    """``<model>.intoto.jsonl``: how a model was trained, signed."""
    return _jsonl(service.attestations.model(model_hash), model_hash.lower())


@router.get(
    "/models/{model_hash}/signature",
    response_class=Response,
    responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
)
def model_signature(service: ServiceDep, _: ReadAccess, model_hash: HashPath) -> Response:
    """An OpenSSF model signature of the model file: ``model_signing verify key
    --signature model.sig --public_key key.pem MODEL`` accepts the downloaded file with it."""
    return Response(
        service.attestations.model_signature(model_hash),
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="model.sig"'},
    )

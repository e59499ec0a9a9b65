"""One router per resource, gathered under ``/v1``."""

from fastapi import APIRouter

from api.routes import (
    admin,
    attestations,
    batches,
    chain,
    datasets,
    jobs,
    lineage,
    models,
    receipts,
    records,
    streams,
    verify,
)

api_router = APIRouter(prefix="/v1")
for module in (
    datasets,
    models,
    attestations,
    records,
    lineage,
    chain,
    receipts,
    batches,
    verify,
    jobs,
    admin,
    streams,
):
    api_router.include_router(module.router)

__all__ = ["api_router"]

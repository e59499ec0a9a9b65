"""One router per resource, gathered under ``/v1``."""

from fastapi import APIRouter

from api.routes import admin, chain, datasets, lineage, models, receipts, records, verify

api_router = APIRouter(prefix="/v1")
for module in (datasets, models, records, lineage, chain, receipts, verify, admin):
    api_router.include_router(module.router)

__all__ = ["api_router"]

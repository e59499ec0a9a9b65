"""Lineage graphs, as nodes and edges or as W3C PROV-JSON."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.deps import HashPath, ReadAccess, ServiceDep
from api.schemas import LineagePublic, ProvDocument

router = APIRouter(prefix="/lineage", tags=["lineage"])


@router.get("/{record_hash}", response_model=LineagePublic | ProvDocument)
def get_lineage(
    service: ServiceDep,
    _: ReadAccess,
    record_hash: HashPath,
    direction: Annotated[Literal["up", "down", "both"], Query()] = "both",
    format: Annotated[Literal["graph", "prov"], Query()] = "graph",
) -> LineagePublic | ProvDocument:
    """Where a record came from (up), what was built on it (down), or both; revoked records
    and everything downstream of them are marked ``tainted``."""
    if format == "prov":
        return service.records.prov(record_hash, direction)
    return service.records.lineage(record_hash, direction)

"""Lineage graphs, as nodes and edges or as W3C PROV-JSON."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.deps import HashPath, ServiceDep
from api.problems import Problem
from ledger.lineage import lineage, to_prov

router = APIRouter(prefix="/lineage", tags=["lineage"])


@router.get("/{record_hash}")
def get_lineage(
    service: ServiceDep,
    record_hash: HashPath,
    direction: Annotated[Literal["up", "down", "both"], Query()] = "both",
    format: Annotated[Literal["graph", "prov"], Query()] = "graph",
) -> dict:
    """Where a record came from (up), what was built on it (down), or both; revoked records
    and everything downstream of them are marked ``tainted``."""
    service.kind_of(record_hash)  # a record anchored a moment ago is indexed first
    try:
        graph = lineage(service.index, record_hash.lower(), direction)
    except LookupError as exc:
        raise Problem(404, "unknown-record", str(exc)) from None
    return to_prov(graph) if format == "prov" else graph.to_json()

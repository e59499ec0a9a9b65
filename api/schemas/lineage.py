"""Lineage graphs and their W3C PROV-JSON export."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from api.schemas._common import (
    BlockNumber,
    Hash,
    UnixTime,
    _Public,
)

__all__ = ["LineageEdgePublic", "LineageNodePublic", "LineagePublic", "ProvDocument"]

# -- lineage ---------------------------------------------------------------------------------


class LineageNodePublic(_Public):
    id: str
    kind: Literal["dataset", "transform", "training", "model", "batch"]
    label: str
    hash: Hash | None = None
    revoked: bool
    tainted: bool
    revoked_reason: str | None = None
    tx_hash: Hash | None = None
    block_number: BlockNumber | None = None
    registered_at: UnixTime | None = None


class LineageEdgePublic(_Public):
    source: str
    target: str
    relation: Literal["wasDerivedFrom", "wasGeneratedBy", "used"]


class LineagePublic(_Public):
    root: str = Field(description="the id of the node the graph starts from (kind:hash)")
    direction: Literal["up", "down", "both"]
    nodes: list[LineageNodePublic]
    edges: list[LineageEdgePublic]


class ProvDocument(_Public):
    """A W3C PROV-JSON document (``format=prov``)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    prefix: dict[str, str]
    entity: dict[str, Any] = Field(default_factory=dict)
    activity: dict[str, Any] = Field(default_factory=dict)

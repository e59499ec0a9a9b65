"""``/lineage/{hash}``: the lineage graph around a record or a receipt, as a page.

The view lives in the URL (``direction`` and ``depth``, as Marquez keeps them), so a view can be
linked. The server sends the nodes and edges twice: as tables, which read without JavaScript,
and as JSON, from which ``lineage.js`` lays the graph out as a DAG (dagre) and draws it as SVG.
Every node links to its page; an activity (a cleaning transform, a training) links to the
record it produced.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from api.console._common import page_hash, service_of
from api.console._render import render
from api.deps import ReadAccess
from ledger.index.lineage import LineageGraph, LineageNode

__all__ = ["node_href", "router"]

router = APIRouter()

MAX_DEPTH = 100
_DIRECTIONS = {
    "up": "where it came from",
    "down": "what was built on it",
    "both": "where it came from and what was built on it",
}
_RECORD_PAGES = {
    "dataset": "/datasets/",
    "model": "/models/",
    "batch": "/batches/",
    "receipt": "/receipts/",
}


def node_href(node_id: str) -> str:
    """The page of a node: a record's own, or for an activity the record it produced."""
    kind, _, rest = node_id.partition(":")
    if kind in _RECORD_PAGES:
        return _RECORD_PAGES[kind] + rest
    if kind == "transform":  # transform:<transform hash>:<dataset hash>
        return "/datasets/" + rest.rpartition(":")[2]
    if kind == "training":  # training:<model hash>
        return "/models/" + rest
    return "/"


def _node(node: LineageNode) -> dict[str, Any]:
    return {
        "id": node.id,
        "kind": node.kind,
        "label": node.label,
        "hash": node.hash,
        "revoked": node.revoked,
        "tainted": node.tainted,
        "revoked_reason": node.revoked_reason,
        "block_number": node.block_number,
        "href": node_href(node.id),
    }


def graph_context(graph: LineageGraph) -> dict[str, Any]:
    """The template's nodes and edges (with links and labels), and the JSON for the drawing."""
    nodes = [_node(n) for n in graph.nodes]
    labels = {n["id"]: n["label"] for n in nodes}
    edges = [
        {
            "source": e.source,
            "target": e.target,
            "relation": e.relation,
            "source_href": node_href(e.source),
            "target_href": node_href(e.target),
            "source_label": labels.get(e.source, e.source),
            "target_label": labels.get(e.target, e.target),
        }
        for e in graph.edges
    ]
    root = next(n for n in nodes if n["id"] == graph.root)
    data = {
        "root": graph.root,
        "direction": graph.direction,
        "nodes": nodes,
        "edges": [{k: e[k] for k in ("source", "target", "relation")} for e in edges],
    }
    return {"nodes": nodes, "edges": edges, "root": root, "graph_data": data}


@router.get("/lineage/{subject}", response_class=HTMLResponse)
def lineage_page(
    request: Request,
    subject: str,
    _: ReadAccess,
    direction: Literal["up", "down", "both"] = "up",
    depth: Annotated[int | None, Query(ge=0, le=MAX_DEPTH)] = None,
) -> HTMLResponse:
    subject = page_hash(subject, "record hash or receipt id")
    graph = service_of(request).browse.lineage(subject, direction, depth)
    context = {
        "subject": subject,
        "direction": direction,
        "direction_label": _DIRECTIONS[direction],
        "depth": depth,
        "max_depth": MAX_DEPTH,
        **graph_context(graph),
    }
    return render(request, "lineage.html", context)

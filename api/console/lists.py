"""``/datasets``, ``/models``, ``/batches``: every record of a kind, a page at a time.

The page's state is its URL query, so a filtered, sorted page can be bookmarked and shared:
``q`` (a name, a file name or a hash prefix), ``status`` (``standing``, ``revoked`` or
``tainted``), ``sort`` (``newest`` or ``oldest``) and ``page`` (from 1). Receipts are listed
on their batch's page (``/batches/{id}?page=N``): the receipt book keeps them by batch, and a
global list of every receipt would need an index of its own for no question an auditor asks.
"""

from __future__ import annotations

from math import ceil
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from api.console._common import service_of
from api.console._render import render
from api.deps import ReadAccess
from api.service.listings import ListKind, Status

__all__ = ["PAGE_SIZE", "pager", "router"]

router = APIRouter()

PAGE_SIZE = 50
Sort = Literal["newest", "oldest"]
_TITLES: dict[ListKind, tuple[str, str]] = {
    "dataset": ("Datasets", "name, file name or hash prefix"),
    "model": ("Models", "algorithm or hash prefix"),
    "batch": ("Batches of predictions", "batch id (hash prefix)"),
}
QueryText = Annotated[str, Query(max_length=200)]
PageNumber = Annotated[int, Query(ge=1, le=10**9)]


def pager(path: str, state: dict[str, Any], page: int, count: int, size: int) -> dict[str, Any]:
    """Where a page sits among ``count`` items and the links to its neighbours, each keeping
    ``state`` (the filters) in its query; defaults are left out so URLs stay short."""
    pages = max(1, ceil(count / size))
    kept = {k: v for k, v in state.items() if v not in ("", "all", "newest", None)}

    def link(number: int) -> str:
        query = urlencode({**kept, **({"page": number} if number > 1 else {})})
        return f"{path}?{query}" if query else path

    return {
        "page": page,
        "pages": pages,
        "first": (page - 1) * size + 1 if count else 0,
        "last": min(page * size, count),
        "count": count,
        "previous": link(page - 1) if page > 1 else None,
        "next": link(page + 1) if page < pages else None,
        "first_link": link(1) if page > 1 else None,
        "last_link": link(pages) if page < pages else None,
    }


def _list_page(
    request: Request, kind: ListKind, q: str, status: Status, sort: Sort, page: int
) -> HTMLResponse:
    listing = service_of(request).browse.listing(
        kind,
        query=q,
        status=status,
        newest_first=sort == "newest",
        offset=(page - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
    )
    state = {"q": q.strip(), "status": status, "sort": sort}
    title, searched = _TITLES[kind]
    context = {
        "kind": kind,
        "title": title,
        "searched": searched,
        "listing": listing,
        "state": state,
        "filtered": bool(state["q"]) or status != "all",
        "pager": pager(request.url.path, state, page, listing.matched, PAGE_SIZE),
    }
    return render(request, "list.html", context)


def _list_route(kind: str, path: str) -> None:
    """``GET path``: the list page of one kind of record (the three pages differ only in it)."""

    def list_page(
        request: Request,
        _: ReadAccess,
        q: QueryText = "",
        status: Status = "all",
        sort: Sort = "newest",
        page: PageNumber = 1,
    ) -> HTMLResponse:
        return _list_page(request, kind, q, status, sort, page)

    list_page.__name__ = f"{kind}_list_page"
    router.get(path, response_class=HTMLResponse)(list_page)


for _kind, _path in (("dataset", "/datasets"), ("model", "/models"), ("batch", "/batches")):
    _list_route(_kind, _path)

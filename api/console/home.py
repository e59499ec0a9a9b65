"""``/``: where the ledger lives, what it holds, what came in last; ``/search``: any hash, or
a name, a file name or the start of a hash."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.console._common import service_of
from api.console._render import render
from api.deps import ReadAccess
from ledger.errors import UnknownRecord

__all__ = ["router"]

router = APIRouter()

SEARCH_LIMIT = 20  # matches shown per kind; the list pages (linked) hold the rest

_PAGES = {
    "dataset": "/datasets/",
    "model": "/models/",
    "batch": "/batches/",
    "receipt": "/receipts/",
}


@router.get("/", response_class=HTMLResponse)
def home(request: Request, _: ReadAccess) -> HTMLResponse:
    service = service_of(request)
    overview = service.browse.overview(service.admin.chain())
    return render(request, "home.html", {"overview": overview})


@router.get("/search", response_class=HTMLResponse)
def search(
    request: Request, _: ReadAccess, q: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    """A record, a receipt or a transaction by hash: a redirect to its page (303, so the
    address bar shows the record's stable URL), or a page listing what a transaction wrote.
    Anything else is looked for in names, file names and hashes: a page of the matches."""
    query = q.strip()
    if not query:
        return RedirectResponse("/", status_code=303)
    browse = service_of(request).browse
    try:
        found = browse.find(query)
    except ValueError:  # not a whole hash: a name, a file name or the start of a hash
        results = browse.search(query, limit=SEARCH_LIMIT)
        context = {"query": query, "results": results, "limit": SEARCH_LIMIT}
        return render(request, "search.html", context)
    if found is None:
        raise UnknownRecord(
            f"nothing on this ledger has the hash {query}: no dataset, model, batch, receipt or "
            "transaction"
        )
    if found.kind == "transaction":
        if len(found.records) == 1:
            kind, value = found.records[0]
            return RedirectResponse(_PAGES[kind] + value, status_code=303)
        return render(request, "transaction.html", {"tx_hash": found.id, "records": found.records})
    return RedirectResponse(_PAGES[found.kind] + found.id, status_code=303)

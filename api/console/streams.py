"""``/streams`` and ``/streams/{name}``: sensor streams, their rate, last seal, versions and dead
letters (issue 27). Versions and chunks link to their dataset pages, where lineage, revocation
and row proofs work as for any dataset. Versions and dead letters page in the URL
(``?versions=N``, ``?dead=N``), so a page can be linked."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from api.console._common import service_of
from api.console._render import render
from api.console.lists import PAGE_SIZE, pager
from api.deps import ReadAccess
from api.errors import UnknownStream
from api.schemas.streams import STREAM_NAME_PATTERN

__all__ = ["router"]

router = APIRouter()

VERSIONS_PER_PAGE = 20
DEAD_PER_PAGE = 20
PageNumber = Annotated[int, Query(ge=1, le=10**9)]


@router.get("/streams", response_class=HTMLResponse)
def streams_page(request: Request, _: ReadAccess, page: PageNumber = 1) -> HTMLResponse:
    listing = service_of(request).streams.list(offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    context = {
        "streams": listing.data,
        "pager": pager(request.url.path, {}, page, listing.count, PAGE_SIZE),
    }
    return render(request, "streams.html", context)


@router.get("/streams/{name}", response_class=HTMLResponse)
def stream_page(
    request: Request,
    name: str,
    _: ReadAccess,
    versions: PageNumber = 1,
    dead: PageNumber = 1,
) -> HTMLResponse:
    streams = service_of(request).streams
    if not re.fullmatch(STREAM_NAME_PATTERN, name):
        raise HTTPException(404, f"{name!r} is not a stream name")
    try:
        stream = streams.get(name)
    except UnknownStream as exc:
        raise HTTPException(404, str(exc)) from None
    shown = streams.versions(
        name, offset=(versions - 1) * VERSIONS_PER_PAGE, limit=VERSIONS_PER_PAGE
    )
    letters = streams.dead_letters(name, offset=(dead - 1) * DEAD_PER_PAGE, limit=DEAD_PER_PAGE)
    path = request.url.path
    context = {
        "stream": stream,
        "versions": shown.data,
        "versions_pager": pager(path, {"dead": dead if dead > 1 else None}, versions,
                                shown.count, VERSIONS_PER_PAGE),
        "dead_letters": letters.data,
        "dead_pager": _dead_pager(path, versions, dead, letters.count),
    }  # fmt: skip
    return render(request, "stream.html", context)


def _dead_pager(path: str, versions: int, dead: int, count: int) -> dict[str, object]:
    """The dead letters' pager: ``pager`` names its page ``page``; here it is ``dead``."""
    paged = pager(path, {}, dead, count, DEAD_PER_PAGE)
    keep = f"versions={versions}&" if versions > 1 else ""
    for key in ("previous", "next", "first_link", "last_link"):
        link = paged[key]
        if link is not None:
            number = link.split("page=")[1] if "page=" in link else "1"
            paged[key] = f"{path}?{keep}dead={number}"
    return paged

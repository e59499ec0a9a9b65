"""Error pages: what a person's browser gets instead of problem+json.

:mod:`api.problems` asks :func:`wants_html` of every error answer and, for a console page asked
for as ``text/html``, answers with :func:`error_page`; every API path (``/v1``, ``/rpc``,
``/healthz``, the OpenAPI documents) keeps answering problem+json whatever it is asked for.
"""

from __future__ import annotations

from http import HTTPStatus

from fastapi import Request
from fastapi.responses import HTMLResponse

from api.console._render import render
from api.paths import is_api_path

__all__ = ["error_page", "wants_html"]


_TITLES = {
    404: "Not found",
    405: "Not a page",
    413: "Too large",
    422: "Cannot read that",
    500: "Something went wrong",
    502: "The chain answered oddly",
    503: "The chain is unavailable",
}


def wants_html(request: Request) -> bool:
    """Whether an error should be a page: a path outside the API, asked for as HTML (the
    ``Accept`` header names ``text/html``, as every browser's navigation does)."""
    path = request.url.path
    if is_api_path(path):
        return False
    return "text/html" in request.headers.get("accept", "").lower()


def error_page(request: Request, status: int, detail: str) -> HTMLResponse:
    """The error as a page of the console, with a search box to go on from."""
    title = _TITLES.get(status) or HTTPStatus(status).phrase
    context = {"status": status, "title": title, "detail": detail, "query": None}
    return render(request, "error.html", context, status=status)

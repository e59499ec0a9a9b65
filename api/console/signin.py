"""``/signin``, ``/signout``: a browser's session on a private deployment.

With ``PROVENANCE_PUBLIC_READ=false`` every page needs a key, which a browser cannot send; the
gate sends a person asking for a page to ``/signin?next=<page>``, where an API key given once
becomes a session cookie (:mod:`api.sessions`: ``HttpOnly``, ``SameSite=Strict``, expiring,
ended by the key's revocation, never holding the key). The session only reads.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.console._render import render
from api.sessions import COOKIE, Sessions

__all__ = ["router"]

router = APIRouter()

NextPage = Annotated[str, Query(max_length=2_000)]


def _safe_next(target: str) -> str:
    """``target`` if it is a path of this site, else ``/``: a sign-in never sends a person
    elsewhere (``//host`` and ``/\\host`` are other sites to a browser)."""
    if not target.startswith("/") or target.startswith(("//", "/\\")) or "\n" in target:
        return "/"
    return target


def _form(
    request: Request,
    next_page: str,
    *,
    error: str | None = None,
    ended: bool = False,
    status: int = 200,
) -> HTMLResponse:
    hours = request.app.state.sessions.max_age // 3600 or 1
    context = {"next_page": _safe_next(next_page), "error": error, "ended": ended,
               "session_hours": hours}  # fmt: skip
    response = render(request, "signin.html", context, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/signin", response_class=HTMLResponse)
def sign_in_page(request: Request, next: NextPage = "/", ended: bool = False) -> HTMLResponse:
    return _form(request, next, ended=ended)


@router.post("/signin", response_class=HTMLResponse)
def sign_in(
    request: Request,
    key: Annotated[str, Form(max_length=500)],
    next: Annotated[str, Form(max_length=2_000)] = "/",
) -> Response:
    """An API key → a session cookie and back to the page asked for; a wrong or revoked key →
    the form again, 401."""
    sessions: Sessions = request.app.state.sessions
    issued = sessions.issue(key.strip())
    if issued is None:
        error = "This API key is unknown or revoked. Paste the whole key, starting pl_."
        return _form(request, next, error=error, status=401)
    _, cookie = issued
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=sessions.max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/signout")
def sign_out() -> Response:
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response

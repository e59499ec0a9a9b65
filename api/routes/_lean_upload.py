"""The upload route's lean path: a well-formed form skips FastAPI's dependency solving.

``POST /v1/datasets`` is issue 21's hot path: 32 clients sending one file a request, answered
on acceptance. Per request FastAPI solved the route's dependencies from its signature (the
service, the registrar rule, the response, three form fields and a query parameter: about a
tenth of the event loop's time under that load, py-spy ``--gil``), validated each form field
through pydantic, and validated the answer against its response model again.

:class:`LeanUploadRoute` reads the form exactly as FastAPI's handler would, with Starlette's own
streaming parser and the same limits (so a file past its spool size is still on disk, never in
memory, and ``BodyGuard`` still counts every byte as it arrives). Then:

1. the form failed to parse (malformed, too many parts, a body past ``max_upload_bytes``, a
   client gone): FastAPI's handler is given a request whose form raises that very exception,
   so it answers exactly as before;
2. the form is one :func:`lean_fields` accepts (one ``file`` part that is a file, at most one
   ``name`` and one ``description``, each non-empty text, nothing else) and ``wait`` is absent
   or one of its values: the endpoint is called here, with the registrar rule resolved as the
   route's dependency would resolve it;
3. anything else (a missing file, a text where the file should be, an empty ``name``, which
   FastAPI reads as absent, repeated fields, a bad ``wait``): FastAPI's handler, which reads the
   form Starlette kept on the request and answers its problem as before.

So the lean path decides only *how fast* a good upload is answered, never *whether* an upload
is good. The answer is the endpoint's: on acceptance its 202 ``JSONResponse`` as it is; a
dataset view serialized by FastAPI's own ``serialize_response`` against the route's response
model, with the route's status code (201, or the 200 the endpoint set). The OpenAPI document
is the route's signature, unchanged. ``tests/api/test_lean_upload.py`` holds the lean answers
equal to the full path's on the same bodies.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response, UploadFile
from fastapi.routing import (
    _FASTAPI_SCOPE_KEY,
    APIRoute,
    _resolve_form_limits,
    serialize_response,
)
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.datastructures import UploadFile as StarletteUploadFile

from api.auth import NEEDS_REGISTRAR

__all__ = ["LeanUploadRoute", "lean_fields", "lean_wait"]

_TEXT_FIELDS = frozenset({"name", "description"})
_WAITS = frozenset({"accepted", "included", "final"})  # api.schemas.accepted.Wait


def lean_wait(values: list[str]) -> str | None:
    """The ``wait`` query parameter's value if FastAPI would take it unchanged (absent means
    ``final``), else None (repeated, empty or unknown: FastAPI says which)."""
    if not values:
        return "final"
    if len(values) == 1 and values[0] in _WAITS:
        return values[0]
    return None


def lean_fields(form: FormData) -> tuple[UploadFile, str | None, str | None] | None:
    """``(file, name, description)`` if FastAPI would pass exactly these to the endpoint, else
    None. Stricter than FastAPI where that is simpler (a repeated or unknown field takes the
    full path, which decides), never looser."""
    file: UploadFile | None = None
    texts: dict[str, str] = {}
    seen: set[str] = set()
    for key, value in form.multi_items():
        if key in seen:
            return None
        seen.add(key)
        if key == "file":
            if not isinstance(value, StarletteUploadFile):
                return None
            file = value  # type: ignore[assignment]  # FastAPI's UploadFile validates as is
        elif key in _TEXT_FIELDS and isinstance(value, str) and value:
            texts[key] = value  # "" would be read as absent by FastAPI: full path
        else:
            return None
    if file is None:
        return None
    return file, texts.get("name"), texts.get("description")


class _FormFailed(Request):
    """The request, for FastAPI's handler, whose form raises what Starlette's parse raised."""

    def __init__(self, request: Request, failure: Exception) -> None:
        super().__init__(request.scope, request.receive, request._send)
        self._failure = failure

    async def _get_form(self, **_: Any) -> FormData:
        raise self._failure


class LeanUploadRoute(APIRoute):
    """The upload route: a form :func:`lean_fields` accepts goes straight to the endpoint;
    any other request is FastAPI's own handler's, unchanged (see the module's steps)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        full = super().get_route_handler()
        endpoint = self.endpoint
        form_limits = self.form_limits
        response_field = self.response_field
        default_status = self.status_code

        async def handler(request: Request) -> Response:
            wait = lean_wait(request.query_params.getlist("wait"))
            if wait is None:
                return await full(request)
            limits = _resolve_form_limits(request.scope.get(_FASTAPI_SCOPE_KEY, {}), form_limits)
            try:
                form = await request.form(**limits)
            except Exception as failure:  # FastAPI's handler answers it, as it would have
                return await full(_FormFailed(request, failure))
            fields = lean_fields(form)
            if fields is None:
                return await full(request)  # reads the form Starlette kept
            file, name, description = fields
            try:
                key = await NEEDS_REGISTRAR(request, None)  # the gate's rule, as the route's
                sub = Response()  # what FastAPI hands an endpoint that takes ``response``
                del sub.headers["content-length"]
                sub.status_code = None  # type: ignore[assignment]
                raw = await run_in_threadpool(
                    endpoint,
                    service=request.app.state.service,
                    _=key,
                    response=sub,
                    file=file,
                    name=name,
                    description=description,
                    wait=wait,
                )
            finally:
                await form.close()
            if isinstance(raw, Response):  # 202 on acceptance, built by the endpoint
                return raw
            content = await serialize_response(
                field=response_field, response_content=raw, is_coroutine=False, dump_json=True
            )
            status = sub.status_code or default_status  # 201, or the 200 the endpoint set
            answer = Response(content, media_type="application/json", status_code=status)
            answer.headers.raw.extend(sub.headers.raw)
            return answer

        return handler

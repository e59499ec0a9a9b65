"""The prediction route's lean path: a well-formed body skips FastAPI's body validation.

``POST /v1/models/{hash}/predict`` is the service's hot path (issue 26). FastAPI reads its body
with Python's ``json``, then pydantic validates every row (``dict[ColumnName, CellValue]``) and
``check_numbers`` walks every number: several microseconds per row, more than the receipt's
own work. The route still declares :class:`~api.schemas.PredictCreate` (the OpenAPI document is
unchanged), but :class:`LeanPredictRoute` first tries :func:`lean_rows`, a check of exactly the
bodies that validation would accept unchanged; for any other body it hands the request to
FastAPI's own handler, which answers exactly as before (``invalid-request``,
``number-out-of-range``, ``json_invalid``...). So the lean path decides only *how fast* a good
body is read, never *whether* a body is good.

What :func:`lean_rows` accepts, and why that equals what FastAPI + pydantic accept unchanged:

1. a JSON content type (``application/json``, with or without parameters): FastAPI parses only
   those as JSON (anything else is refused by validation);
2. orjson parses it (it refuses ``NaN``, ``Infinity``, numbers past float64, lone surrogates
   and non-UTF-8 text, all of which Python's ``json`` reads and validation then refuses or
   keeps: the full path says which);
3. an object whose only key is ``rows`` (``extra="forbid"``), a non-empty list of objects
   (``min_length=1``), each key 1 to 256 characters (``ColumnName``), each value a JSON
   number, string, boolean or null (``CellValue``); every number is then a finite float64 or
   an integer within 64 bits, which ``check_numbers`` passes;
4. no float of magnitude 2**63 or more: orjson reads an integer past 64 bits as a float
   (Python's ``json`` keeps it an ``int``, and canonical JSON, hence the input hash, would
   differ), and such an integer reads as such a float; a body with one takes the full path
   (which also reads the rare float literal that large correctly).

``tests/api/test_lean_predict.py`` holds the lean answer to the full path's on the same bodies.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from itertools import chain
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from api.auth import NEEDS_REGISTRAR
from api.schemas import HASH_PATTERN, PredictCreate

__all__ = ["LeanPredictRoute", "lean_rows"]

_HASH = re.compile(HASH_PATTERN)
_CELL_TYPES = frozenset({int, float, str, bool, type(None)})
_FLOATS = {float}
_DICTS = {dict}
_BIG = 2.0**63  # orjson reads a JSON integer at least this large as a float
_MAX_COLUMN = 256  # ColumnName's max_length


def _json_type(content_type: str | None) -> bool:
    """FastAPI's test (``application/json`` or ``application/*+json``, parameters allowed),
    for the spellings clients send; anything unusual takes the full path."""
    if not content_type:
        return False
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def lean_rows(content_type: str | None, body: bytes) -> list[dict[str, Any]] | None:
    """The body's rows if it is one FastAPI + pydantic would accept unchanged (see the module
    steps), else None: the full path then validates it and answers its problem."""
    if not body or not _json_type(content_type):
        return None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(document) is not dict or len(document) != 1:
        return None
    rows = document.get("rows")
    if type(rows) is not list or not rows or set(map(type, rows)) != _DICTS:
        return None
    # The whole request's values and key tuples at once: a few passes in C, not a loop per row.
    values = list(chain.from_iterable(map(dict.values, rows)))
    kinds = set(map(type, values))
    if kinds == _FLOATS:  # the usual request: its bounds in two passes
        if max(values) >= _BIG or min(values) <= -_BIG:
            return None
    elif not _CELL_TYPES.issuperset(kinds) or (
        float in kinds and any(type(v) is float and not -_BIG < v < _BIG for v in values)
    ):
        return None
    for shape in set(map(tuple, rows)):  # each distinct tuple of keys once
        if not all(0 < len(key) <= _MAX_COLUMN for key in shape):
            return None
    return rows


class LeanPredictRoute(APIRoute):
    """The predict route: a body :func:`lean_rows` accepts goes straight to the endpoint (with
    the dependencies it declares resolved here: the service, the registrar rule, the path's
    hash); any other request is FastAPI's own handler's, unchanged."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        full = super().get_route_handler()
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            model_hash = request.path_params.get("model_hash", "")
            rows = None
            if _HASH.fullmatch(model_hash):
                rows = lean_rows(request.headers.get("content-type"), await request.body())
            if rows is None:
                return await full(request)  # reads the body Starlette kept
            key = await NEEDS_REGISTRAR(request, None)  # the gate's rule, as the route's
            return await run_in_threadpool(
                endpoint,
                service=request.app.state.service,
                _=key,
                model_hash=model_hash,
                body=PredictCreate.model_construct(rows=rows),
            )

        return handler

"""The auditor's console: server-rendered pages in the same app, mounted at ``/``.

Read-only: writes stay in the API and the CLI. Its routes are not part of the OpenAPI document,
which describes the JSON API under ``/v1``.

==================  ===========================================================================
``/``               chain coordinates, counts, recent records, search (``home.py``)
``/search?q=``      a full hash → its page; a name, file name or hash prefix → the matches
``/datasets``       every dataset, paged, filtered and sorted in the URL query (``lists.py``;
                    ``/models`` and ``/batches`` alike)
``/datasets/{h}``   a dataset, its schema, parents, children, models; ``?row=N`` proves a row
``/models/{h}``     a model: algorithm, parameters, split, metrics, training data, batches
``/batches/{h}``    a batch of predictions and its receipts, paged (``records.py``: these three)
``/receipts/{id}``  a receipt, its anchoring, and the verifier run in the browser
``/lineage/{h}``    the lineage graph (``?direction=up|down|both&depth=N``)
``/streams``        sensor streams: rate, last seal, versions, dead letters (``streams.py``;
                    ``/streams/{name}`` one of them)
``/verify``         the verifier: paste or drop a receipt or an evidence bundle
``/signin``         a private deployment's sign-in: an API key → a read-only session cookie
``/static/{name}``  the committed bundles (``web/`` builds them; no CDN, no network)
==================  ===========================================================================

Pages read only through the service's parts (``request.app.state.service``); the joins a page
needs beyond one record (children, batches of a model, taint, a transaction's records) are
``service.browse``. Errors asked for as HTML are pages too (:mod:`api.console.errors`, used by
:mod:`api.problems`).
"""

from fastapi import APIRouter, Depends

from api.console import (
    home,
    lineage,
    lists,
    receipts,
    records,
    signin,
    static_files,
    streams,
    verify,
)
from api.console._render import start_timer

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(start_timer)])
for _part in (home, lists, records, receipts, lineage, streams, verify, signin, static_files):
    router.include_router(_part.router)

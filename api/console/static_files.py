"""``GET /static/{name}``: the console's committed, prebuilt assets, served by the app itself.

Nothing is fetched from a CDN (the machine may be offline) and nothing is built at serving time:
the bundles under ``api/console/static/`` are built from ``web/`` and committed, and a test
rebuilds them and compares byte for byte. Only files of that folder are served, by exact name;
a URL carrying the file's current version (``?v=``, see :func:`asset_url`) may be cached for
good, any other must be revalidated.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response

from api.console._render import ASSET_VERSIONS, STATIC_DIR

__all__ = ["router"]

router = APIRouter()

_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".map": "application/json",
}


@router.get("/static/{name}", response_class=FileResponse)
def static_file(name: str, request: Request) -> Response:
    """One asset by name, with an ETag; immutable when asked for by its current version."""
    version = ASSET_VERSIONS.get(name)
    if version is None:
        raise HTTPException(404, f"no console asset {name}")
    path = STATIC_DIR / name
    media_type = _MEDIA_TYPES.get(path.suffix, "application/octet-stream")
    etag = f'"{version}"'
    cache = (
        "public, max-age=31536000, immutable"
        if request.query_params.get("v") == version
        else "no-cache"
    )
    headers = {"ETag": etag, "Cache-Control": cache, "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=media_type, headers=headers)

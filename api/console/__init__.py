"""The auditor's console: server-rendered pages in the same app, mounted at ``/``.

Read-only: writes stay in the API and the CLI. Its routes are not part of the OpenAPI document,
which describes the JSON API under ``/v1``.
"""

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

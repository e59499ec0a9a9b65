"""Which paths are the machine API's (answered as problem+json, never as a console page or a
sign-in redirect): one list for the auth gate and the console's error pages."""

from __future__ import annotations

__all__ = ["API_PREFIXES", "is_api_path"]

API_PREFIXES = ("/v1", "/rpc", "/healthz", "/openapi.json", "/docs", "/redoc")


def is_api_path(path: str) -> bool:
    """Whether ``path`` is one of the API's (a prefix itself, or below one)."""
    return any(path == prefix or path.startswith(prefix + "/") for prefix in API_PREFIXES)

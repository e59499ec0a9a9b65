"""Rendering console pages: one Jinja2 environment, the filters every template shares, and the
headers every page carries.

Pages are rendered on the server and read without JavaScript; the two bundles (lineage graph,
verifier) only add to them. Each answer says how long the server took (``Server-Timing``, which
the browser's developer tools and the console benchmark read) and carries a content security
policy that allows scripts and styles from the app only: the pages load nothing from elsewhere,
and the verifier may reach any JSON-RPC node the auditor names (``connect-src *``).
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

__all__ = [
    "STATIC_DIR",
    "TEMPLATES_DIR",
    "asset_url",
    "json_text",
    "render",
    "start_timer",
]

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src *; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def start_timer(request: Request) -> None:
    """Router dependency: note when the page's work began, for ``Server-Timing``."""
    request.state.console_started = time.perf_counter()


def _asset_versions() -> dict[str, str]:
    """Each static file's name → the first 12 hex digits of its SHA-256 (the cache buster)."""
    if not STATIC_DIR.is_dir():
        return {}
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in sorted(STATIC_DIR.iterdir())
        if path.is_file()
    }


ASSET_VERSIONS = _asset_versions()


def asset_url(name: str) -> str:
    """``/static/NAME?v=HASH``: a URL that changes whenever the file does."""
    return f"/static/{name}?v={ASSET_VERSIONS.get(name, '0')}"


def _short(value: Any, keep: int = 10) -> str:
    """``0x1234abcd…`` for a hash or an address; anything else unchanged."""
    text = "" if value is None else str(value)
    return text if len(text) <= keep + 4 else f"{text[:keep]}…{text[-4:]}"


def _when(value: Any) -> Markup:
    """A unix time as a ``<time>`` element in UTC, readable and machine-readable."""
    if value is None:
        return Markup("—")
    moment = datetime.fromtimestamp(int(value), tz=UTC)
    return Markup('<time datetime="{}">{}</time>').format(
        moment.isoformat().replace("+00:00", "Z"), moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    )


def json_text(value: Any, indent: int | None = 2) -> str:
    """A value as JSON text, keys sorted, as Python writes it (``5000.0`` stays a float)."""
    return json.dumps(value, indent=indent, sort_keys=True, ensure_ascii=False)


def _script_json(value: Any) -> Markup:
    """JSON for a ``<script type="application/json">`` block: ``<``, ``>`` and ``&`` escaped so
    that no value can close the element."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        short=_short, when=_when, json_text=json_text, script_json=_script_json, plural=_plural
    )
    env.globals.update(asset_url=asset_url)
    return env


ENVIRONMENT = _environment()


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """The page ``template`` rendered with ``context``, with the console's headers."""
    html = ENVIRONMENT.get_template(template).render(request_path=request.url.path, **context)
    started = getattr(request.state, "console_started", None)
    response = HTMLResponse(html, status_code=status, headers=headers)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if started is not None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        response.headers["Server-Timing"] = f'app;dur={elapsed_ms:.2f};desc="console page"'
    return response

"""``/docs`` in Chromium with the network off: every request that is not to the service's own
loopback origin is aborted, and Swagger UI (served from the package's pinned assets, not a CDN)
still renders every operation of the OpenAPI document. The console's "API" link leads there."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.console._server import Served

pytestmark = pytest.mark.slow

TIMEOUT = 30_000  # ms


def _offline(page: Any, origin: str) -> list[str]:
    """Abort every request not to ``origin``; the list collects what was refused."""
    refused: list[str] = []

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if url == origin or url.startswith(f"{origin}/"):
            request_route.continue_()
        else:
            refused.append(url)
            request_route.abort("internetdisconnected")

    page.context.route("**/*", route)
    return refused


def _operations(served: Served) -> list[str]:
    paths = httpx.get(f"{served.url}/openapi.json", timeout=30).json()["paths"]
    return sorted(f"{method.upper()} {path}" for path, item in paths.items() for method in item)


def test_the_api_page_renders_every_operation_with_the_network_off(
    page: Any, served: Served
) -> None:
    refused = _offline(page, served.url)
    page.goto("/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API").click()
    page.wait_for_url(f"{served.url}/docs")
    summaries = page.locator(".swagger-ui .opblock .opblock-summary")
    summaries.first.wait_for(timeout=TIMEOUT)
    page.locator(".swagger-ui .info .title").wait_for(timeout=TIMEOUT)
    assert "Provenance Ledger" in page.locator(".swagger-ui .info .title").inner_text()
    shown = sorted(
        f"{summary.locator('.opblock-summary-method').inner_text().strip()} "
        f"{summary.locator('.opblock-summary-path').get_attribute('data-path')}"
        for summary in summaries.all()
    )
    assert shown == _operations(served)
    assert page.evaluate("typeof SwaggerUIBundle") == "function"
    assert refused == [], f"the page reached out: {refused}"


def test_an_upload_field_is_a_file_input(page: Any, served: Served) -> None:
    """``format: binary`` makes Swagger UI offer a file chooser for the upload fields."""
    _offline(page, served.url)
    page.goto("/docs#/datasets/register_dataset_v1_datasets_post")
    operation = page.locator("#operations-datasets-register_dataset_v1_datasets_post")
    operation.locator(".opblock-summary").wait_for(timeout=TIMEOUT)
    if operation.locator(".try-out").count() == 0:  # collapsed: open it
        operation.locator(".opblock-summary").click()
    operation.locator(".try-out__btn").click()
    assert operation.locator("input[type=file]").count() >= 1

"""Fixtures for the console: the real service with the console's ledger, and Chromium.

The browser tests need Debian's ``chromium`` and ``web/node_modules`` (axe-core); ``scripts/test``
installs both. Without them those tests are skipped, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console._browser import AXE_JS, chromium_path, launch
from tests.console._server import Served, served_world


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_world(tmp_path_factory.mktemp("console")) as running:
        yield running


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One Chromium for this folder's tests, closed when a worker leaves the folder: a
    session-wide one kept Playwright's loop running on the main thread, and a browser test of
    tests/api that a worker ran afterwards (``--dist worksteal`` lets a worker go back in the
    collected order) failed with "Sync API inside the asyncio loop"."""
    if chromium_path() is None:
        pytest.skip("chromium is not installed: apt-get install -y chromium (scripts/test does)")
    if not AXE_JS.is_file():
        pytest.skip("web/node_modules is missing: run `npm ci --prefix web`")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        running = launch(playwright)
        yield running
        running.close()


@pytest.fixture
def page(browser: Any, served: Served) -> Iterator[Any]:
    context = browser.new_context(base_url=served.url, viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="session")
def cases_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("verify-cases")

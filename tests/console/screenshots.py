"""Screenshots of the console's main pages for ``docs/screenshots/``: ``scripts/screenshots``.

The real service on loopback with the console's test ledger (:mod:`tests.console._world`),
photographed by Debian's Chromium: wide pages at 1280 px, one at a phone's 390 px. Each waits
for what the page does in the browser (the verifier's verdict, the graph's layout) first.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from tests.console._browser import launch
from tests.console._server import served_world

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "docs" / "screenshots"
MAX_HEIGHT = 1_900


def _shoot(page: Any, path: Path, ready: str | None, scroll_to: str | None = None) -> None:
    if ready:
        page.wait_for_selector(ready, timeout=60_000)
    if scroll_to:  # a phone's screenful, at the part that matters
        page.locator(scroll_to).scroll_into_view_if_needed()
        page.evaluate(f"() => document.querySelector({scroll_to!r}).scrollIntoView()")
        page.screenshot(path=str(path))
        print(f"wrote {path.relative_to(REPO)} ({page.viewport_size['width']} px, viewport)")
        return
    height = min(MAX_HEIGHT, page.evaluate("() => document.documentElement.scrollHeight"))
    width = page.viewport_size["width"]
    page.screenshot(
        path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": width, "height": height}
    )
    print(f"wrote {path.relative_to(REPO)} ({width}x{height})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/screenshots", description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="console-shots-") as tmp,
        served_world(Path(tmp)) as served,
        sync_playwright() as playwright,
    ):
        world = served.world
        receipt = world.receipt["receipt_id"]
        shots = [
            ("overview.png", "/", None, 1280),
            ("receipt-verified.png", f"/receipts/{receipt}", "#service-report[data-verdict]", 1280),
            ("model-tainted.png", f"/models/{world.loans_model}", None, 1280),
            ("lineage.png", f"/lineage/{receipt}", "[data-lineage][data-ready=true]", 1280),
            ("dataset-row-proof.png", f"/datasets/{world.clean}?row=1#row-proof",
             "[data-browser-mark][data-ok]", 1280),
            ("verify-phone.png", f"/receipts/{receipt}", "#service-report[data-verdict]", 390),
        ]  # fmt: skip
        scroll = {"verify-phone.png": "#browser-report", "dataset-row-proof.png": "#row-proof"}
        browser = launch(playwright)
        for name, path, ready, width in shots:
            context = browser.new_context(
                base_url=served.url,
                viewport={"width": width, "height": 1000 if width > 600 else 844},
                device_scale_factor=1 if width > 600 else 2,
                color_scheme="light",
            )
            page = context.new_page()
            page.goto(path)
            _shoot(page, args.out / name, ready, scroll.get(name))
            context.close()
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Debian's Chromium under Playwright, and axe-core injected into a page.

``playwright install`` cannot download a browser here, so the tests drive the system's
``chromium`` (``apt-get install chromium``, which ``scripts/test`` does when it is missing).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

__all__ = ["AXE_JS", "CHROMIUM_ARGS", "axe_violations", "chromium_path", "launch"]

REPO = Path(__file__).resolve().parents[2]
AXE_JS = REPO / "web" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium_path() -> str | None:
    return shutil.which("chromium")


def launch(playwright: Any) -> Any:
    """A headless Chromium browser (the system's)."""
    return playwright.chromium.launch(
        executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
    )


def axe_violations(page: Any, impacts: tuple[str, ...] = ("serious", "critical")) -> list[Any]:
    """axe-core's violations of these impacts on the page as it stands (WCAG 2.x A and AA, and
    best practices), each as ``{id, impact, help, nodes: [target...]}``."""
    page.add_script_tag(path=str(AXE_JS))
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ["violations"]});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                           nodes: v.nodes.map(n => n.target.join(" "))}));
        }"""
    )
    return [v for v in result if v["impact"] in impacts]

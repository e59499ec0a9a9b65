"""Every entry module of ``api`` imports on its own, in a fresh interpreter: an import cycle
that the app's own import order hides (``api.app`` loads ``api.console`` first) still breaks a
script, a benchmark or a test that starts from another module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "module",
    ["api.auth", "api.service", "api.console", "api.app", "api.cli", "api.problems", "api.paths"],
)
def test_the_module_imports_alone(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]

"""The committed console assets are exactly what the pinned toolchain builds from ``web/``
(as ``tests/contracts/test_build.py`` holds the contract artifact to its sources)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "web"
STATIC = REPO / "api" / "console" / "static"

pytestmark = pytest.mark.skipif(
    not (WEB / "node_modules" / "esbuild").is_dir() or shutil.which("node") is None,
    reason="the web toolchain is missing: run `npm ci --prefix web`",
)


def _build(outdir: Path) -> None:
    done = subprocess.run(
        ["node", str(WEB / "build.mjs"), "--outdir", str(outdir)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_committed_bundles_are_byte_identical_to_a_fresh_build(tmp_path: Path) -> None:
    _build(tmp_path)
    built = sorted(p.name for p in tmp_path.iterdir())
    assert built == sorted(p.name for p in STATIC.iterdir()), "stale or extra files in static/"
    stale = [
        name for name in built if (tmp_path / name).read_bytes() != (STATIC / name).read_bytes()
    ]
    assert stale == [], f"rebuild with `node web/build.mjs`: {stale} differ"


def _check(against: Path) -> subprocess.CompletedProcess[str]:
    command = ["node", str(WEB / "build.mjs"), "--check", "--against", str(against)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_the_check_mode_reports_a_stale_bundle(tmp_path: Path) -> None:
    shutil.copytree(STATIC, tmp_path / "static")
    assert _check(tmp_path / "static").returncode == 0
    stale = tmp_path / "static" / "verify.js"
    stale.write_bytes(stale.read_bytes().replace(b"signer_authorized", b"signer_authorised"))
    failed = _check(tmp_path / "static")
    assert failed.returncode == 1 and "verify.js" in failed.stderr


def test_the_lockfile_pins_every_package_exactly() -> None:
    import json

    manifest = json.loads((WEB / "package.json").read_text())
    for name, version in manifest["devDependencies"].items():
        assert version[0].isdigit(), f"{name} is not pinned exactly: {version}"
    lock = json.loads((WEB / "package-lock.json").read_text())
    assert lock["lockfileVersion"] >= 3
    assert all("integrity" in entry for key, entry in lock["packages"].items() if key)


def test_the_bundles_fetch_nothing_from_elsewhere() -> None:
    for path in STATIC.iterdir():
        text = path.read_text(encoding="utf-8")
        assert "cdn.jsdelivr" not in text and "unpkg.com" not in text, path.name
    assert not any(p.suffix == ".map" for p in STATIC.iterdir())

"""The committed artifact is exactly what the pinned compiler makes of the sources."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest

from ledger.chain import build
from ledger.chain._paths import ARTIFACT_PATH, CONTRACTS_DIR, NODE_MODULES
from ledger.chain.contract_artifact import load_artifact

pytestmark = pytest.mark.skipif(
    not (NODE_MODULES / "solc").is_dir(), reason="solc-js missing: run `npm ci --prefix contracts`"
)


@pytest.fixture(scope="module")
def fresh_build() -> dict[str, Any]:
    """One build of the sources for the tests that need the pinned compiler's output (a
    build takes seconds: the tests that must change the input build their own)."""
    return build.build_artifact()


def test_committed_artifact_is_byte_identical_to_a_fresh_build(fresh_build: dict[str, Any]):
    assert build.render_artifact(fresh_build) == ARTIFACT_PATH.read_bytes()


def test_artifact_pins_compiler_version_and_evm_version():
    artifact = load_artifact()
    assert artifact.compiler_version.startswith(build.SOLC_VERSION + "+commit.")
    assert build.COMPILER_SETTINGS["evmVersion"] == "cancun"


def test_changed_settings_no_longer_match_the_artifact():
    settings = copy.deepcopy(build.COMPILER_SETTINGS)
    settings["optimizer"]["runs"] = 200
    assert build.render_artifact(build.build_artifact(settings=settings)) != (
        ARTIFACT_PATH.read_bytes()
    )


def test_changed_source_no_longer_matches_the_artifact(tmp_path: Path):
    (tmp_path / "src").mkdir()
    for unit in build.SOURCE_UNITS:
        shutil.copy(CONTRACTS_DIR / unit, tmp_path / unit)
    (tmp_path / "node_modules").symlink_to(NODE_MODULES)
    source = tmp_path / "src" / "ProvenanceLedger.sol"
    text = source.read_text()
    assert '"1.2.0"' in text  # the edit below must change something
    source.write_text(text.replace('"1.2.0"', '"1.2.1"'))
    assert build.render_artifact(build.build_artifact(tmp_path)) != ARTIFACT_PATH.read_bytes()


def test_wrong_compiler_version_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake = tmp_path / "solc"
    fake.write_text("#!/bin/sh\necho 'Version: 0.8.20+commit.a1b79de6.Linux.g++'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("SOLC_BINARY", str(fake))
    with pytest.raises(build.BuildError, match=r"expected solc 0\.8\.29"):
        build.build_artifact()


def test_check_mode_reports_a_stale_artifact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_build: dict[str, Any]
):
    # --check compares a fresh build with the committed file: here, the module's one build
    monkeypatch.setattr(build, "build_artifact", lambda *a, **k: copy.deepcopy(fresh_build))
    stale = tmp_path / "ProvenanceLedger.json"
    stale.write_bytes(ARTIFACT_PATH.read_bytes().replace(b"0x60", b"0x61", 1))
    monkeypatch.setattr(build, "ARTIFACT_PATH", stale)
    assert build.main(["--check"]) == 1
    monkeypatch.setattr(build, "ARTIFACT_PATH", ARTIFACT_PATH)
    assert build.main(["--check"]) == 0

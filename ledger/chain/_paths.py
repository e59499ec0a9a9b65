"""Where the repository's contract sources and committed artifacts live."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = REPO_ROOT / "contracts"
NODE_MODULES = CONTRACTS_DIR / "node_modules"
ARTIFACT_PATH = CONTRACTS_DIR / "build" / "ProvenanceLedger.json"

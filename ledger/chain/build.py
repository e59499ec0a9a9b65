"""Compile the contract with the pinned compiler and write the committed artifact.

``python -m ledger.chain.build`` rebuilds ``contracts/build/ProvenanceLedger.json``;
``python -m ledger.chain.build --check`` exits 1 if the committed artifact differs from a fresh
build.

The compiler is driven through py-solc-x's ``compile_standard``. A native ``solc`` is used when
``SOLC_BINARY`` names one; otherwise ``contracts/solc-shim`` runs the npm ``solc`` (solc-js)
package pinned in ``contracts/package.json``. Either way the version must be :data:`SOLC_VERSION`,
and sources are given by repository-relative unit names, so the bytecode (whose metadata hash
covers unit names and contents) is the same on every machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from ledger.chain._paths import ARTIFACT_PATH, CONTRACTS_DIR, NODE_MODULES
from ledger.errors import LedgerError

__all__ = ["COMPILER_SETTINGS", "SOLC_VERSION", "build_artifact", "render_artifact"]

SOLC_VERSION = "0.8.29"
CONTRACT_NAME = "ProvenanceLedger"
SOURCE_UNITS = ("src/IProvenanceLedger.sol", "src/ProvenanceLedger.sol")
COMPILER_SETTINGS: dict[str, Any] = {
    "evmVersion": "cancun",
    "remappings": ["@openzeppelin/=node_modules/@openzeppelin/"],
    "optimizer": {"enabled": True, "runs": 10_000},
    # The IR pipeline writes a record's packed slot with one SSTORE and keeps the batch loops
    # lean: a batch of 100 datasets costs 29,322 gas a record with it, 30,061 without (measured).
    "viaIR": True,
    "metadata": {"bytecodeHash": "ipfs"},
    "outputSelection": {
        "src/ProvenanceLedger.sol": {
            CONTRACT_NAME: [
                "abi",
                "evm.bytecode.object",
                "evm.deployedBytecode.object",
                "evm.deployedBytecode.immutableReferences",
            ]
        }
    },
}


class BuildError(LedgerError, RuntimeError):
    """The compiler is missing, is the wrong version, or rejected the sources."""


def _solc_binary() -> Path:
    configured = os.environ.get("SOLC_BINARY")
    binary = Path(configured) if configured else CONTRACTS_DIR / "solc-shim"
    if not configured and not (NODE_MODULES / "solc").is_dir():
        raise BuildError(
            "solc-js is not installed: run `npm ci --prefix contracts` (or set SOLC_BINARY)"
        )
    return binary


def build_artifact(
    contracts_dir: Path = CONTRACTS_DIR, settings: dict[str, Any] = COMPILER_SETTINGS
) -> dict[str, Any]:
    """Compile the sources under ``contracts_dir`` with ``settings``; return the artifact
    document (abi, bytecodes, compiler, source hashes)."""
    import solcx  # lazily: serving uses the committed artifact and never needs a compiler

    binary = _solc_binary()
    version = str(solcx.wrapper.get_solc_version(binary, with_commit_hash=True))
    if not version.startswith(SOLC_VERSION + "+"):
        raise BuildError(f"expected solc {SOLC_VERSION}, {binary} is {version}")
    sources = {unit: (contracts_dir / unit).read_text(encoding="utf-8") for unit in SOURCE_UNITS}
    standard_input = {
        "language": "Solidity",
        "sources": {unit: {"content": text} for unit, text in sources.items()},
        "settings": settings,
    }
    try:
        output = solcx.compile_standard(
            standard_input,
            solc_binary=binary,
            base_path=str(contracts_dir),
            allow_paths=[str(NODE_MODULES)],
        )
    except solcx.exceptions.SolcError as exc:
        raise BuildError(f"compilation failed: {exc}") from exc
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise BuildError("\n".join(e["formattedMessage"] for e in errors))
    contract = output["contracts"]["src/ProvenanceLedger.sol"][CONTRACT_NAME]
    return {
        "contractName": CONTRACT_NAME,
        "abi": contract["abi"],
        "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
        "deployedBytecode": "0x" + contract["evm"]["deployedBytecode"]["object"],
        # where the runtime code holds immutables (the predecessor's address), which deployment
        # fills in: a deployed contract's code hash is taken with those bytes zeroed
        "immutableReferences": contract["evm"]["deployedBytecode"].get("immutableReferences", {}),
        "compiler": {"version": version, "settings": settings},
        "sources": {
            unit: "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
            for unit, text in sources.items()
        },
    }


def render_artifact(artifact: dict[str, Any]) -> bytes:
    """The artifact's committed byte form: sorted keys, two-space indent, final newline."""
    return (json.dumps(artifact, indent=2, sort_keys=True) + "\n").encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledger.chain.build", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    rendered = render_artifact(build_artifact())
    if args.check:
        committed = ARTIFACT_PATH.read_bytes() if ARTIFACT_PATH.exists() else b""
        if committed != rendered:
            print(f"{ARTIFACT_PATH} is stale: run `python -m ledger.chain.build`", file=sys.stderr)
            return 1
        print(f"{ARTIFACT_PATH} matches a fresh build")
        return 0
    ARTIFACT_PATH.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT_PATH.write_bytes(rendered)
    print(f"wrote {ARTIFACT_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

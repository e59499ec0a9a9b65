"""The committed contract artifact: what the service deploys and talks to.

Serving reads this file and never needs a compiler (``ledger.chain.build`` writes it)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ledger.chain._paths import ARTIFACT_PATH

__all__ = ["ContractArtifact", "load_artifact"]


@dataclass(frozen=True)
class ContractArtifact:
    """ABI and bytecode of the ledger contract, plus the compiler that made them."""

    abi: list[dict[str, Any]]
    bytecode: bytes
    deployed_bytecode: bytes
    compiler_version: str

    @property
    def code_hash(self) -> str:
        """``sha256:<hex>`` of the runtime bytecode: what a deployment record pins."""
        return "sha256:" + hashlib.sha256(self.deployed_bytecode).hexdigest()


@cache
def load_artifact(path: Path = ARTIFACT_PATH) -> ContractArtifact:
    """Read and cache the committed artifact."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    return ContractArtifact(
        abi=doc["abi"],
        bytecode=bytes.fromhex(doc["bytecode"].removeprefix("0x")),
        deployed_bytecode=bytes.fromhex(doc["deployedBytecode"].removeprefix("0x")),
        compiler_version=doc["compiler"]["version"],
    )

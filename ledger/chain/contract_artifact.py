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

__all__ = ["ContractArtifact", "load_artifact", "masked_code_hash"]


@dataclass(frozen=True)
class ContractArtifact:
    """ABI and bytecode of the ledger contract, plus the compiler that made them.

    ``immutable_ranges`` are the ``(start, length)`` byte ranges of the runtime code that
    deployment fills in (contract 1.2.0's predecessor address); older artifacts have none."""

    abi: list[dict[str, Any]]
    bytecode: bytes
    deployed_bytecode: bytes
    compiler_version: str
    immutable_ranges: tuple[tuple[int, int], ...] = ()

    @property
    def code_hash(self) -> str:
        """``sha256:<hex>`` of the runtime bytecode (immutables zero): what a deployment
        record pins."""
        return "sha256:" + hashlib.sha256(self.deployed_bytecode).hexdigest()

    def deployed_code_hash(self, code: bytes) -> str:
        """The code hash of ``code`` read from a chain, with this artifact's immutables
        zeroed, to compare with :attr:`code_hash`."""
        return masked_code_hash(code, self.immutable_ranges)

    def with_constructor(self, *args: Any) -> list[Any]:
        """The constructor's arguments as this artifact's ABI takes them: contract 1.2.0 takes
        ``(admin, predecessor)``, 1.0.0 and 1.1.0 only ``(admin)``."""
        [constructor] = [item for item in self.abi if item["type"] == "constructor"]
        return list(args[: len(constructor["inputs"])])


def masked_code_hash(code: bytes, ranges: tuple[tuple[int, int], ...]) -> str:
    """``sha256:<hex>`` of ``code`` with the bytes in ``ranges`` set to zero."""
    buffer = bytearray(code)
    for start, length in ranges:
        if start + length <= len(buffer):
            buffer[start : start + length] = bytes(length)
    return "sha256:" + hashlib.sha256(bytes(buffer)).hexdigest()


@cache
def load_artifact(path: Path = ARTIFACT_PATH) -> ContractArtifact:
    """Read and cache the committed artifact (or an older release's, given its path)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    ranges = tuple(
        sorted(
            (ref["start"], ref["length"])
            for refs in doc.get("immutableReferences", {}).values()
            for ref in refs
        )
    )
    return ContractArtifact(
        abi=doc["abi"],
        bytecode=bytes.fromhex(doc["bytecode"].removeprefix("0x")),
        deployed_bytecode=bytes.fromhex(doc["deployedBytecode"].removeprefix("0x")),
        compiler_version=doc["compiler"]["version"],
        immutable_ranges=ranges,
    )

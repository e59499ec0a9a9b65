"""The baseline every throughput figure is compared with: the least a content-hash registry
can do on chain, one storage slot and one event per write.

Its creation code was compiled once with the pinned solc-js (0.8.29, optimizer on, 10,000
runs, EVM ``cancun``, no metadata hash) and is committed here, so benchmarks never compile.
``python -m bench._registry`` recompiles it (needs ``npm ci --prefix contracts``) and says
whether the constant still matches.

Its source is :data:`SOURCE` below.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from eth_utils import keccak

__all__ = ["BYTECODE", "GAS_LIMIT", "REGISTER_SELECTOR", "SOLC_VERSION", "SOURCE", "register_data"]

SOLC_VERSION = "0.8.29+commit.ab55807c.Emscripten.clang"
SOURCE = """\
// SPDX-License-Identifier: MIT
pragma solidity 0.8.29;

/// The baseline: the least a content-hash registry can do (one slot, one event).
contract MinimalRegistry {
    mapping(bytes32 id => address owner) public ownerOf;

    event Registered(bytes32 indexed id, address indexed owner);

    error AlreadyRegistered(bytes32 id);

    function register(bytes32 id) external {
        if (ownerOf[id] != address(0)) revert AlreadyRegistered(id);
        ownerOf[id] = msg.sender;
        emit Registered(id, msg.sender);
    }
}
"""

BYTECODE = (
    "0x6080604052348015600e575f5ffd5b506101978061001c5f395ff3fe608060405234801561000f575f5ffd"
    "5b5060043610610034575f3560e01c80637dd5641114610038578063e1fa8e8414610096575b5f5ffd5b6100"
    "6d610046366004610173565b5f6020819052908152604090205473ffffffffffffffffffffffffffffffffff"
    "ffffff1681565b60405173ffffffffffffffffffffffffffffffffffffffff90911681526020016040518091"
    "0390f35b6100a96100a4366004610173565b6100ab565b005b5f8181526020819052604090205473ffffffff"
    "ffffffffffffffffffffffffffffffff161561010d576040517f77caf6720000000000000000000000000000"
    "000000000000000000000000000081526004810182905260240160405180910390fd5b5f8181526020819052"
    "604080822080547fffffffffffffffffffffffff000000000000000000000000000000000000000016339081"
    "179091559051909183917f7d917fcbc9a29a9705ff9936ffa599500e4fd902e4486bae317414fe967b307c91"
    "90a350565b5f60208284031215610183575f5ffd5b503591905056fea164736f6c634300081d000a"
)
REGISTER_SELECTOR = keccak(text="register(bytes32)")[:4]
OWNER_OF_SELECTOR = keccak(text="ownerOf(bytes32)")[:4]
# The explicit gas limit the baseline is sent with (a write uses ~44,000-49,000).
GAS_LIMIT = 100_000


def register_data(record_id: bytes) -> bytes:
    """Calldata for ``register(id)``."""
    if len(record_id) != 32:
        raise ValueError("a record id is 32 bytes")
    return REGISTER_SELECTOR + record_id


_COMPILE_JS = """
const path = require("path");
const solc = require(path.join(process.argv[1], "solc"));
const source = require("fs").readFileSync(0, "utf8");
const input = {
  language: "Solidity",
  sources: { "MinimalRegistry.sol": { content: source } },
  settings: {
    evmVersion: "cancun",
    optimizer: { enabled: true, runs: 10000 },
    metadata: { bytecodeHash: "none" },
    outputSelection: { "*": { "*": ["evm.bytecode.object"] } },
  },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const c = out.contracts["MinimalRegistry.sol"].MinimalRegistry;
const result = { version: solc.version(), bytecode: "0x" + c.evm.bytecode.object };
process.stdout.write(JSON.stringify(result));
"""


def compile_source() -> dict[str, Any]:
    """Compile :data:`SOURCE` with the npm solc-js the contracts pin (never at bench time)."""
    from ledger.chain._paths import NODE_MODULES

    out = subprocess.run(
        ["node", "-e", _COMPILE_JS, str(NODE_MODULES)],
        input=SOURCE,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


if __name__ == "__main__":
    fresh = compile_source()
    same = fresh["bytecode"] == BYTECODE and fresh["version"] == SOLC_VERSION
    print(f"{fresh['version']}: {'matches' if same else 'DIFFERS FROM'} the committed bytecode")
    sys.exit(0 if same else 1)

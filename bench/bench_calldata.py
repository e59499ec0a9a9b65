"""Calldata of a batch write: the client's :class:`~ledger.chain._calls.CallEncoder` against
web3's ``Contract.encode_abi`` (the baseline, what the client used before), on the same
``registerDatasets`` call, interleaved, 7 runs of 50 encodings each.

    python -m bench.bench_calldata [records per call, default 30]

The write sender encodes each batch twice (its simulation and its transaction): under a burst
of accepted writes web3's encoder was 12% of the service's time (issue 21, BENCHMARKS.md).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from web3 import Web3

from ledger.chain._calls import CallEncoder, ContractCall, datasets_call
from ledger.chain.contract_artifact import load_artifact
from ledger.records import DatasetInput


def _timed(encode: Callable[[str, Any], str], call: ContractCall, n: int = 50) -> float:
    start = time.perf_counter()
    for _ in range(n):
        encode(call.fn_name, call.args)
    return (time.perf_counter() - start) / n


def main() -> None:
    records = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    abi = load_artifact().abi
    web3_encode = Web3().eth.contract(abi=abi).encode_abi
    ours = CallEncoder(abi).encode

    def h() -> str:
        return "0x" + os.urandom(32).hex()

    call = datasets_call([DatasetInput(h(), h(), 7, h(), h()) for _ in range(records)])
    assert ours(call.fn_name, call.args) == web3_encode(call.fn_name, call.args)
    pairs = [(_timed(web3_encode, call), _timed(ours, call)) for _ in range(7)]
    base = statistics.median(p[0] for p in pairs)
    mine = statistics.median(p[1] for p in pairs)
    ratio = statistics.median(p[0] / p[1] for p in pairs)
    print(
        f"registerDatasets of {records} records: web3 encode_abi {base * 1e3:.2f} ms, "
        f"CallEncoder {mine * 1e3:.2f} ms ({mine / records * 1e6:.0f} us a record): "
        f"{ratio:.1f}x faster (median of 7 paired runs)"
    )


if __name__ == "__main__":
    main()

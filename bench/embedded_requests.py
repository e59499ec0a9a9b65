"""What the write path's requests cost on the embedded chain through web3 and in process (the
figures behind issue 22's last row in BENCHMARKS.md): the mined block, the receipt, the head,
the send of a signed transaction, and the signing, each side timed in one run.

    python -m bench.embedded_requests [--repeat 7] [--number 100]

Reads: the best of ``--repeat`` runs of ``--number`` calls (``timeit``), in microseconds a call.
Sends: each side sends its own transactions (a nonce is spent once), interleaved, and the
median is printed, since every send mines and stores a block.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_keys.datatypes import PrivateKey

from ledger.chain._signing import sign_dynamic_fee
from ledger.chain.backends.embedded import EmbeddedBackend

_KEY = b"\x01" * 32
_GAS = 21_000
_FEES = {"maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}


def _best_us(call: Callable[[], Any], repeat: int, number: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.embedded_requests")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work, EmbeddedBackend(Path(work)) as chain:
        w3 = chain.w3
        account = Account.from_key(_KEY)
        chain.fund(account.address, 10**20)
        key, chain_id = PrivateKey(account.key), w3.eth.chain_id
        nonce = w3.eth.get_transaction_count(account.address)

        def signed() -> bytes:
            nonlocal nonce
            raw = sign_dynamic_fee(
                key, chain_id=chain_id, nonce=nonce, max_priority_fee=10**9, max_fee=10**10,
                gas=_GAS, to=account.address, data=b"",
            ).raw  # fmt: skip
            nonce += 1
            return raw

        sends: dict[str, list[float]] = {"web3": [], "in process": []}
        for i in range(2 * args.number):
            raw = signed()
            start = time.perf_counter()
            if i % 2:
                w3.eth.send_raw_transaction(raw)
            else:
                chain.send_raw(raw)
            sends["web3" if i % 2 else "in process"].append(time.perf_counter() - start)
        tx_hash = w3.eth.get_block("latest")["transactions"][0]
        block_hash = w3.eth.get_transaction_receipt(tx_hash)["blockHash"]
        tx = {"type": 2, "chainId": chain_id, "nonce": nonce, "to": account.address,
              "value": 0, "gas": _GAS, "data": "0x" + "ab" * 356, **_FEES}  # fmt: skip

        def lean_sign() -> Any:
            return sign_dynamic_fee(
                key, chain_id=chain_id, nonce=nonce, max_priority_fee=10**9, max_fee=10**10,
                gas=_GAS, to=account.address, data=tx["data"],
            )  # fmt: skip

        r, n = args.repeat, args.number
        rows = [
            ("the mined block, by hash", _best_us(lambda: w3.eth.get_block(block_hash), r, n),
             _best_us(lambda: chain.read_block(block_hash.to_0x_hex()), r, n)),
            ("the receipt", _best_us(lambda: w3.eth.get_transaction_receipt(tx_hash), r, n),
             _best_us(lambda: chain.read_receipt(tx_hash.to_0x_hex()), r, n)),
            ("the head", _best_us(lambda: w3.eth.block_number, r, n),
             _best_us(chain.head_number, r, n)),
            ("a send (median, mines a block)", statistics.median(sends["web3"]) * 1e6,
             statistics.median(sends["in process"]) * 1e6),
            ("signing, 356 bytes of data (eth-account / ours)",
             _best_us(lambda: account.sign_transaction(tx), r, n), _best_us(lean_sign, r, n)),
        ]  # fmt: skip
    print("| request on the embedded chain | through web3, us | in process, us |")
    print("|---|---|---|")
    for name, through_web3, in_process in rows:
        print(f"| {name} | {through_web3:,.0f} | {in_process:,.0f} |")


if __name__ == "__main__":
    main()

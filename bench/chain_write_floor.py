"""The floor of our chain write: the ledger's one-dataset registration sent the baseline's raw
way (signed locally, sent raw, receipt awaited; nothing else), beside the registry baseline's
two writes, interleaved on one persistent embedded chain.

    python -m bench.chain_write_floor [--rounds 6] [--writes 20]

Prints the median wall and CPU milliseconds per write of each: if ours sent raw costs what the
baseline costs, the gap of a service registration to the baseline is everything else an upload
does (issue 22's single-client target).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench._common import RawSender, open_chain
from bench.bench_registration import _Baselines
from ledger.chain._calls import datasets_call
from ledger.chain.client import LedgerClient
from ledger.records import DatasetInput, hash_hex

GAS = 200_000  # a one-dataset registerDatasets uses about 54,000


def _random_hash() -> str:
    return hash_hex(os.urandom(32))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chain_write_floor")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--writes", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work, open_chain("embedded-disk", Path(work)) as chain:
        baselines = _Baselines(chain)
        account = chain.account()
        client, _ = LedgerClient.deploy(chain.backend, account)
        sender = RawSender(chain.backend, account)

        def ours_raw() -> None:
            item = DatasetInput(
                _random_hash(),
                rows_root=_random_hash(),
                row_count=10,
                schema_hash=_random_hash(),
                metadata_hash=_random_hash(),
            )
            sender.send(client.address, client.transaction(datasets_call([item]))["data"], GAS)

        ways: dict[str, Callable[[], None]] = {
            "registry via web3": baselines.web3_transact,
            "registry raw": baselines.raw,
            "ours raw": ours_raw,
        }
        taken: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
        for write in ways.values():  # warm-up
            write()
        for _ in range(args.rounds):
            for name, write in ways.items():
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(args.writes):
                    write()
                taken[name].append(
                    (
                        (time.perf_counter() - wall) / args.writes * 1e3,
                        (time.process_time() - cpu) / args.writes * 1e3,
                    )
                )
    for name, runs in taken.items():
        print(f"{name}: wall {statistics.median(w for w, _ in runs):.1f} ms, "
              f"CPU {statistics.median(c for _, c in runs):.1f} ms a write")  # fmt: skip


if __name__ == "__main__":
    main()

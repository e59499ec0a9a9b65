"""The index's sync across contract generations, against a first generation's in the same run.

    python -m bench.bench_index_generations [--records 600] [--rounds 5] [--against REV]

Builds three ledgers on one embedded chain, each with ``records`` datasets (registered 20 to a
transaction) and one revocation for every ten: on a first generation alone (the baseline); on
two generations, written to the newest; and on two generations, every write made to the
superseded generation 1 after the upgrade (each checked against the index before it is
applied). Each round rebuilds a fresh SQLite index of each ledger, rounds interleaved; prints
the median records/s, the spread, and the ratio to the baseline. ``--against REV`` adds each
ledger synced by the index sync module of git revision REV (the code before a change), loaded
beside this tree's (a revision whose sync fails on superseded writes still syncs these: their
hashes are all new). Nothing passes or fails.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from eth_account import Account

from ledger.chain.backends.embedded import EmbeddedBackend
from ledger.chain.client import Generation, LedgerClient
from ledger.index import _sync
from ledger.index.sqlite import LedgerIndex
from ledger.records import DatasetInput

_PER_TX = 20


def _h() -> str:
    return "0x" + secrets.token_hex(32)


def _write(client: LedgerClient, records: int) -> int:
    """``records`` datasets and a revocation for every ten; returns the record events."""
    hashes = [_h() for _ in range(records)]
    for start in range(0, records, _PER_TX):
        client.register_datasets(
            [DatasetInput(x, _h(), 1, _h(), _h()) for x in hashes[start : start + _PER_TX]]
        )
    for x in hashes[::10]:
        client.revoke(x, "bench")
    return records + len(hashes[::10])


def _ledgers(backend: EmbeddedBackend, records: int) -> dict[str, tuple[LedgerClient, int]]:
    account = Account.create()
    backend.fund(account.address, 10**22)
    alone, _ = LedgerClient.deploy(backend, account)
    written = _write(alone, records)
    ledgers = {"one generation": (alone, written)}
    for name, superseded in (("two, writes to the newest", False),
                             ("two, every write superseded", True)):  # fmt: skip
        first, _ = LedgerClient.deploy(backend, account)
        second, deployed = LedgerClient.deploy(backend, account, predecessor=first.address)
        newest = LedgerClient(
            backend,
            account,
            second.address,
            deploy_block=first.deploy_block,
            transactor=second.transactor,
            generations=(
                Generation(first.address, first.deploy_block, deployed.block_number - 1),
                Generation(second.address, deployed.block_number),
            ),
        )
        writer = LedgerClient(backend, account, first.address, transactor=second.transactor)
        ledgers[name] = (newest, _write(writer if superseded else newest, records))
    return ledgers


def _module_at(rev: str) -> ModuleType:
    """``ledger/index/_sync.py`` as of git revision ``rev``, imported beside this tree's."""
    source = subprocess.run(
        ["git", "show", f"{rev}:ledger/index/_sync.py"],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
    ).stdout
    path = Path(tempfile.mkdtemp()) / "_sync_at_rev.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("_sync_at_rev", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _rebuild_rate(sync: Callable[..., int], client: LedgerClient, expected: int) -> float:
    with tempfile.TemporaryDirectory() as tmp, LedgerIndex(Path(tmp) / "i.sqlite3") as index:
        start = time.perf_counter()
        applied = sync(index._db, client, chunk_blocks=2_000, reset=True)
        elapsed = time.perf_counter() - start
    assert applied == expected, (applied, expected)
    return expected / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", help="a git revision whose index sync is the baseline too")
    args = parser.parse_args()
    print(f"{args.records} datasets a ledger on the embedded chain; pid {os.getpid()}\n")
    backend = EmbeddedBackend()
    ledgers = _ledgers(backend, args.records)
    runs = {name: (_sync.sync, client, n) for name, (client, n) in ledgers.items()}
    if args.against:  # the same ledgers synced by the other revision's code
        before = _module_at(args.against).sync
        for name, (client, n) in ledgers.items():
            runs[f"{name}, sync of {args.against}"] = (before, client, n)
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (sync, client, n) in runs.items():
            rates[name].append(_rebuild_rate(sync, client, n))
    backend.close()
    base = statistics.median(rates["one generation"])
    print("| ledger | sync (record events/s, median) | spread | vs one generation |")
    print("|---|---:|---:|---:|")
    for name, found in rates.items():
        median = statistics.median(found)
        spread = f"{min(found):,.0f}-{max(found):,.0f}"
        print(f"| {name} | {median:,.0f} | {spread} | {median / base:.2f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

"""The event index on its two engines, side by side: a SQLite file and PostgreSQL (a scratch
database on 127.0.0.1:5432), over the same embedded chain.

    python -m bench.bench_index_engines [--records 300] [--lookups 3000]

Registers ``records`` datasets on an embedded chain, then for each engine: one sync of all of
them, ``lookups`` record lookups by hash (what every request does, ``indexed_record``), and
pages of 50 (the listings). Prints one Markdown table; nothing passes or fails. PostgreSQL's
lookups pay a loopback round trip (and a pooled connection's check) that SQLite's do not.
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import time
from pathlib import Path

from eth_account import Account

from ledger.chain.backends.embedded import EmbeddedBackend
from ledger.chain.client import LedgerClient
from ledger.index.base import indexed_record
from ledger.index.postgres import PostgresIndex
from ledger.index.sqlite import LedgerIndex
from ledger.storage.postgres import PgConnections
from ledger.storage.schema import upgrade
from tests._servers import scratch_database


def _h() -> str:
    return "0x" + secrets.token_hex(32)


def run(records: int, lookups: int) -> list[tuple[str, float, float, float]]:
    backend = EmbeddedBackend()
    account = Account.create()
    backend.fund(account.address, 10**21)
    client, _ = LedgerClient.deploy(backend, account)
    hashes = []
    for _ in range(records):
        hashes.append(_h())
        client.register_dataset(
            hashes[-1],
            rows_root=_h(),
            row_count=1,
            schema_hash=_h(),
            metadata_hash=_h(),
            parents=[],
            transform_hash="0x" + "00" * 32,
        )
    rows = []
    with tempfile.TemporaryDirectory() as tmp, scratch_database("bench_index") as url:
        upgrade(url)
        db = PgConnections(url, max_size=4)
        engines = {
            "SQLite file": LedgerIndex(Path(tmp) / "index.sqlite3"),
            "PostgreSQL (loopback)": PostgresIndex(db),
        }
        for name, index in engines.items():
            start = time.perf_counter()
            assert index.sync(client) == records
            synced = time.perf_counter() - start
            start = time.perf_counter()
            for i in range(lookups):
                assert indexed_record(index, "dataset", hashes[i % records]) is not None
            per_lookup = (time.perf_counter() - start) / lookups
            start = time.perf_counter()
            pages = max(1, lookups // 50)
            for i in range(pages):
                index.datasets(offset=(i * 50) % records, limit=50)
            per_page = (time.perf_counter() - start) / pages
            rows.append((name, records / synced, 1 / per_lookup, 1 / per_page))
            index.close()
        db.close()
    backend.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--lookups", type=int, default=3000)
    args = parser.parse_args()
    print(f"{args.records} datasets on the embedded chain; pid {os.getpid()}\n")
    print("| engine | sync (records/s) | lookups by hash /s | pages of 50 /s |")
    print("|---|---:|---:|---:|")
    for name, sync, lookup, page in run(args.records, args.lookups):
        print(f"| {name} | {sync:,.0f} | {lookup:,.0f} | {page:,.0f} |")


if __name__ == "__main__":
    main()

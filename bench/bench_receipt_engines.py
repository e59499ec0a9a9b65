"""The receipt book on its two engines, side by side: a SQLite file and PostgreSQL (a scratch
database on 127.0.0.1:5432), with the same receipts.

    python -m bench.bench_receipt_engines [--requests 400] [--rows 10] [--clients 4]
    python -m bench.bench_receipt_engines --http [--rounds 3]

For each engine, interleaved over ``--rounds``: ``clients`` threads write ``requests`` requests of
``rows`` receipts each (durable before returning, grouped commits), then one plan of every
pending receipt in batches of 1024, then one read (``get``, with its proof once anchored) of
every receipt. Prints one Markdown table with each PostgreSQL figure as a ratio of the SQLite
one of the same round (median over rounds); nothing passes or fails. No chain: the book alone.

``--http``: predictions through ``provenance serve`` instead, two services running at once (the
embedded chain, default anchoring; one with its SQLite files, one with
``PROVENANCE_DATABASE_URL`` on a scratch database), ``clients`` threads each sending 20 requests
of ``rows`` rows to each in turn, round after round; receipts/s and the same-round ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from ledger.formats.receipt_requests import IssuedReceipt
from ledger.formats.receipt_signing import ReceiptSigner
from ledger.formats.receipts import ReceiptDomain
from ledger.storage.pg_receipt_book import PgReceiptBook
from ledger.storage.postgres import PgConnections
from ledger.storage.receipt_book import ReceiptBook, ReceiptStore
from ledger.storage.schema import upgrade
from tests._servers import scratch_database

SIGNER = ReceiptSigner(b"\x0b" * 32, ReceiptDomain(1, "0x" + "44" * 20))


def _requests(n: int, rows: int, salt: int) -> list[list[IssuedReceipt]]:
    return [
        SIGNER.sign_request(
            model_hash=b"\x06" * 32,
            input_hashes=[
                (salt * 1_000_003 + k * rows + i).to_bytes(32, "big") for i in range(rows)
            ],
            outputs=[1.0] * rows,
        ).issued(['{"x":1}'] * rows)
        for k in range(n)
    ]


def _measure(
    book: ReceiptStore, requests: list[list[IssuedReceipt]], clients: int
) -> tuple[float, float, float]:
    """Receipts written /s, planned /s, read /s."""
    total = sum(len(r) for r in requests)
    start = time.perf_counter()
    threads = [
        threading.Thread(target=lambda k=k: [book.add_issued(r) for r in requests[k::clients]])
        for k in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    written = total / (time.perf_counter() - start)
    start = time.perf_counter()
    roots = book.plan(1024)
    planned = total / (time.perf_counter() - start)
    for root in roots:
        book.mark_anchored(root, "0x" + "00" * 32, 1)
    start = time.perf_counter()
    for request in requests:
        for item in request:
            assert book.get(item.receipt_id) is not None
    read = total / (time.perf_counter() - start)
    return written, planned, read


def _http(args: argparse.Namespace) -> None:
    from bench._server import api_server
    from bench.bench_receipts import load, rows_body, setup_model

    rates: dict[str, list[float]] = {"sqlite": [], "pg": []}
    with tempfile.TemporaryDirectory() as tmp, scratch_database("bench_receipts_http") as url:
        upgrade(url)
        work = Path(tmp)
        envs = {"sqlite": None, "pg": {"PROVENANCE_DATABASE_URL": url}}
        with (
            api_server(work / "sqlite", envs["sqlite"]) as sqlite,
            api_server(work / "pg", envs["pg"]) as pg,
        ):
            servers = {"sqlite": sqlite, "pg": pg}
            paths = {}
            for name, server in servers.items():
                with server.client() as http:
                    paths[name] = f"/v1/models/{setup_model(http)}/predict"
                load(server, paths[name], lambda i: rows_body(args.rows, i), 2, clients=1)
            for _ in range(args.rounds):
                for name, server in servers.items():
                    figures = load(
                        server,
                        paths[name],
                        lambda i: rows_body(args.rows, i),
                        20,
                        clients=args.clients,
                        check=lambda r: len(r.json()["receipts"]),
                    )
                    rates[name].append(figures["rate"])
    print("| service | receipts/s (median) | rounds |")
    print("|---|---:|---|")
    for name, label in (("sqlite", "SQLite files"), ("pg", "PostgreSQL book (and index, keys)")):
        print(
            f"| {label} | {statistics.median(rates[name]):,.0f} | "
            + ", ".join(f"{r:,.0f}" for r in rates[name])
            + " |"
        )
    ratio = statistics.median(p / s for p, s in zip(rates["pg"], rates["sqlite"], strict=True))
    print(f"| PostgreSQL / SQLite (same round, median) | {ratio:.2f}x | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--http", action="store_true", help="predictions through the service")
    args = parser.parse_args()
    if args.http:
        _http(args)
        return
    print(
        f"{args.requests} requests of {args.rows} receipts from {args.clients} threads, "
        f"{args.rounds} rounds; pid {os.getpid()}\n"
    )
    figures: dict[str, list[tuple[float, float, float]]] = {"sqlite": [], "pg": []}
    with tempfile.TemporaryDirectory() as tmp, scratch_database("bench_receipts") as url:
        upgrade(url)
        db = PgConnections(url, max_size=args.clients + 2)
        for n in range(args.rounds):
            sqlite = ReceiptBook(Path(tmp) / f"receipts{n}.sqlite3")
            figures["sqlite"].append(
                _measure(sqlite, _requests(args.requests, args.rows, 2 * n), args.clients)
            )
            sqlite.close()
            pg = PgReceiptBook(db)
            figures["pg"].append(
                _measure(pg, _requests(args.requests, args.rows, 2 * n + 1), args.clients)
            )
        db.close()
    print("| engine | written receipts/s | planned receipts/s | reads (get + proof) /s |")
    print("|---|---:|---:|---:|")
    for name, key in (
        ("SQLite file (WAL, synchronous=FULL)", "sqlite"),
        ("PostgreSQL (loopback)", "pg"),
    ):
        cells = [statistics.median(f[i] for f in figures[key]) for i in range(3)]
        print(f"| {name} | " + " | ".join(f"{c:,.0f}" for c in cells) + " |")
    ratios = [
        statistics.median(
            p[i] / s[i] for p, s in zip(figures["pg"], figures["sqlite"], strict=True)
        )
        for i in range(3)
    ]
    print(
        "| PostgreSQL / SQLite (same round, median) | "
        + " | ".join(f"{r:.2f}x" for r in ratios)
        + " |"
    )


if __name__ == "__main__":
    main()

"""The tables and headline figures of ``bench_verification``, from the figures it measured."""

from __future__ import annotations

import statistics
from typing import Any

from bench._common import Config, fmt, print_table, summarize, write_results

__all__ = ["report"]

_SINGLE = (
    ("api_1", "HTTP API, 1 client", "api_1_baseline"),
    ("api_4", "HTTP API, 4 clients", "api_1_baseline"),
    ("lib_steady", "library, embedded, steady (head unchanged)", "lib_baseline"),
    ("lib_cold", "library, embedded, state read for each", "lib_baseline"),
    ("lib_rpc", "library over the service's /rpc (web3-free reader)", "lib_rpc_baseline"),
)


def _cell(s: dict[str, Any]) -> str:
    return f"{fmt(s['median'])} ({fmt(s['min'])}-{fmt(s['max'])})"


def _single(config: Config, figures: dict[str, list[dict[str, Any]]], blocks: int) -> Any:
    rows, summary = [], {}
    for key, label, base in _SINGLE:
        runs = figures[key]
        rate = summarize([r["rate"] for r in runs])
        lat = {q: summarize([r[f"{q}_ms"] for r in runs]) for q in ("p50", "p99")}
        base_rate = summarize([r["rate"] for r in figures[base]])
        cost = summarize([b["rate"] / r["rate"] for r, b in zip(runs, figures[base], strict=False)])
        summary[key] = {"verifications_per_s": rate, "latency_ms": lat,
                        "baseline_eth_calls_per_s": base_rate,
                        "eth_calls_per_verification": cost, "runs": runs}  # fmt: skip
        rows.append([label, _cell(rate), _cell(lat["p50"]), _cell(lat["p99"]), _cell(base_rate),
                     _cell(cost)])  # fmt: skip
    table = print_table(
        f"One receipt at a time, median of {config.runs} runs (min-max); chain of {blocks} blocks",
        ["path", "verifications/s", "p50 ms", "p99 ms", "baseline eth_call/s (same path)",
         "verification cost in eth_calls"],
        rows,
    )  # fmt: skip
    return summary, table


def _bulk(bulk: dict[str, Any]) -> Any:
    recovery = summarize(bulk["recovery"])
    summary = {"recovery_per_s": recovery, "library_receipts": bulk["lib_n"],
               "http_receipts": bulk["http_n"]}  # fmt: skip
    rows = []
    for key, label, n in (
        ("lib", "library verify_receipts", bulk["lib_n"]),
        ("http", "HTTP API POST /v1/verify/receipts/file", bulk["http_n"]),
        ("cli", "CLI provenance audit FILE --rpc-url (process)", bulk["http_n"]),
    ):
        rate = summarize(bulk[key])
        ratio = rate["median"] / recovery["median"]
        summary[key] = {"receipts_per_s": rate, "ratio_vs_recovery": ratio}
        rows.append([label, f"{n:,}", _cell(rate), _cell(recovery), f"{ratio:.2f}"])
    table = print_table(
        "Bulk verification of one batch (min-max over runs)",
        ["path", "receipts", "receipts/s", "baseline: pure signature recovery/s (same run)",
         "x recovery"],
        rows,
    )  # fmt: skip
    return summary, table


def _cli(cli: dict[str, list[float]]) -> Any:
    summary = {k: summarize(v) for k, v in cli.items()}
    rows = [
        ["provenance --help", _cell(summary["help"]), f"python -c pass {_cell(summary['python'])}"],
        ["provenance verify bundle.json --rpc-url", _cell(summary["verify"]),
         f"python -c 'import web3' {_cell(summary['web3'])}"],
    ]  # fmt: skip
    table = print_table(
        "CLI wall time as a fresh process, seconds, median (min-max)",
        ["command", "seconds", "baseline (same run)"],
        rows,
    )
    return summary, table


def report(
    config: Config,
    figures: dict[str, list[dict[str, Any]]],
    cli: dict[str, list[float]],
    bulk: dict[str, Any],
    blocks: int,
) -> list[dict[str, Any]]:
    single, single_table = _single(config, figures, blocks)
    bulk_summary, bulk_table = _bulk(bulk)
    cli_summary, cli_table = _cli(cli)
    write_results(
        "verification",
        {"figures": single, "bulk": bulk_summary, "cli": cli_summary, "chain_blocks": blocks},
        [single_table, bulk_table, cli_table],
    )
    headline = []
    for key, what, target, (min_rate, max_p99) in (
        ("lib_steady", "library, embedded, steady", ">= 300/s, p99 <= 10 ms", (300, 10)),
        ("lib_cold", "library, embedded, state read for each", ">= 300/s, p99 <= 10 ms",
         (300, 10)),
        ("api_1", "HTTP API, 1 client", ">= 150/s, p99 <= 20 ms", (150, 20)),
    ):  # fmt: skip
        s = single[key]
        rate, p99 = s["verifications_per_s"]["median"], s["latency_ms"]["p99"]["median"]
        headline.append({
            "benchmark": "verification", "figure": f"{what}: verifications/s, p99 ms",
            "measured": f"{fmt(rate)}/s, p99 {fmt(p99)} ms",
            "baseline": f"eth_call {fmt(s['baseline_eth_calls_per_s']['median'])}/s",
            "ratio": f"{fmt(s['eth_calls_per_verification']['median'])} eth_calls",
            "target": target, "met": rate >= min_rate and p99 <= max_p99,
        })  # fmt: skip
    recovery = bulk_summary["recovery_per_s"]["median"]
    for key, what in (("lib", "library"), ("http", "HTTP API"), ("cli", "CLI audit")):
        s = bulk_summary[key]
        rate = s["receipts_per_s"]["median"]
        n = bulk_summary["library_receipts" if key == "lib" else "http_receipts"]
        headline.append({
            "benchmark": "verification", "figure": f"bulk, {what}: receipts/s ({n:,} of a batch)",
            "measured": f"{fmt(rate)}/s", "baseline": f"signature recovery {fmt(recovery)}/s",
            "ratio": f"{s['ratio_vs_recovery']:.2f}x",
            "target": ">= 5,000/s and >= 0.25x recovery",
            "met": rate >= 5000 and s["ratio_vs_recovery"] >= 0.25,
        })  # fmt: skip
    for key, what, limit in (("help", "provenance --help", 0.3),
                             ("verify", "provenance verify bundle.json", 0.6)):  # fmt: skip
        seconds = statistics.median(cli[key])
        headline.append({
            "benchmark": "verification", "figure": f"{what}: seconds",
            "measured": f"{seconds:.2f} s",
            "baseline": f"python -c pass {statistics.median(cli['python']):.2f} s, "
                        f"import web3 {statistics.median(cli['web3']):.2f} s",
            "ratio": "", "target": f"<= {limit} s", "met": seconds <= limit,
        })  # fmt: skip
    return headline

"""Run every benchmark: ``python -m bench`` (9-15 minutes on 2 cores) or
``python -m bench --quick`` (about 4 minutes), or ``python -m bench --smoke`` (the test suite's
run: every benchmark once, at sizes too small for its figures to mean anything).

Set-up, once per clone::

    npm ci --prefix bench        # EAS contracts for the gas benchmark (artifacts, no compiling)
    npm ci --prefix contracts    # anvil, for the anvil rows (skipped with a note without it)

Each benchmark prints Markdown tables and writes ``bench/results/<name>.json``; the suite ends
with a summary of the headline figures against the targets of issue 8, also written to
``bench/results/summary.json``. Every figure is the median of several runs with its spread,
next to a baseline measured in the same run. Nothing passes or fails on time: the exit status
is non-zero only if a benchmark could not run at all.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench._common import RESULTS_DIR, Config, machine, print_table
from bench._server import SharedService

BENCHMARKS = {
    "gas": "bench.bench_gas",
    "registration": "bench.bench_registration",
    "receipts": "bench.bench_receipts",
    "serving": "bench.bench_serving",
    "verification": "bench.bench_verification",
    "hashing": "bench.bench_memory",
    "scale": "bench.bench_scale",
    "console": "bench.bench_console",
    "hostile": "bench.bench_hostile",
    "datasets": "bench.bench_datasets",
    "training": "bench.bench_training",
    "streams": "bench.bench_streams",
}


def _run_all(
    chosen: list[str],
    config: Config,
    headline: list[dict[str, Any]],
    failed: list[str],
    durations: dict[str, float],
) -> None:
    for name in chosen:
        print(f"## {name}\n", flush=True)
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(BENCHMARKS[name])
            headline += module.run(config) or []
        except Exception:
            traceback.print_exc()
            print(f"{name}: FAILED (see the traceback above)\n", flush=True)
            failed.append(name)
        durations[name] = round(time.perf_counter() - t0, 1)
        print(f"({name}: {durations[name]:.0f} s)\n", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, 3 runs")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="the test suite's run: quick, one run, smaller sizes; its figures mean nothing",
    )
    parser.add_argument("--runs", type=int, help="runs per figure (default 3 quick, 5 full)")
    parser.add_argument(
        "--only", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}", default=""
    )
    parser.add_argument("--no-anvil", action="store_true", help="skip the anvil rows")
    parser.add_argument("--tmp", type=Path, help="where temporary chains and files go")
    args = parser.parse_args(argv)
    if args.smoke:
        args.quick, args.runs = True, 1
    chosen = [b.strip() for b in args.only.split(",") if b.strip()] or list(BENCHMARKS)
    unknown = [b for b in chosen if b not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")

    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    started = time.perf_counter()
    info = machine()
    print(
        f"python -m bench{'' if mode == 'full' else ' --' + mode}: {info['cpus']} CPUs "
        f"({info['cpu_model']}), {info['mem_total_gib']} GiB, Python {info['python']}\n",
        flush=True,
    )
    headline: list[dict[str, Any]] = []
    failed: list[str] = []
    durations: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="provenance-bench-", dir=args.tmp) as tmp:
        shared = SharedService(Path(tmp) / "shared-service") if args.quick else None
        config = Config(
            quick=args.quick,
            runs=args.runs or (3 if args.quick else 5),
            tmp=Path(tmp),
            anvil=not args.no_anvil,
            shared=shared,
            smoke=args.smoke,
        )
        try:
            _run_all(chosen, config, headline, failed, durations)
        finally:
            if shared is not None:
                shared.close()

    elapsed = time.perf_counter() - started
    table = print_table(
        f"Headline figures against the targets ({mode} run, {elapsed:.0f} s)",
        ["benchmark", "figure", "measured", "baseline (same run)", "ratio", "target", "met"],
        [
            [
                h["benchmark"],
                h["figure"],
                h["measured"],
                h.get("baseline", ""),
                h.get("ratio", ""),
                h["target"],
                {True: "yes", False: "NO", None: "-"}[h.get("met")],
            ]
            for h in headline
        ],
    )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    summary = {
        "command": "python -m bench" + ("" if mode == "full" else f" --{mode}"),
        "argv": sys.argv[1:] if argv is None else argv,
        "elapsed_seconds": round(elapsed, 1),
        "durations_seconds": durations,
        "failed": failed,
        "machine": info,
        "headline": headline,
        "table": table,
    }
    (RESULTS_DIR / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if failed:
        print(f"FAILED: {', '.join(failed)}", flush=True)
        return 1
    print(f"all benchmarks ran in {elapsed:.0f} s; results in bench/results/", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

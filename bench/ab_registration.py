"""Two versions of the service side by side: one client's HTTP registrations on the embedded
chain, as the "embedded-disk | HTTP API" row of ``python -m bench --only registration`` sends
them, through this checkout's ``provenance serve`` and through another checkout's (a
``git archive`` of the commit to compare with), interleaved run by run with the web3 registry
baseline on a persistent embedded chain:

    git archive BASE | tar -x -C /tmp/base   # plus the built ledger/formats/_rowtree*.so
    python -m bench.ab_registration /tmp/base [--n 20] [--runs 7]

The other checkout runs with this interpreter and ``PYTHONPATH`` set to it, so only the
project's code differs. Each figure is the median of the runs, each ratio the median of the
ratios within a run (the machine is shared: read the ratios, not the rates); the CPU time
(user + system) each service spent per upload is printed too, a figure the load inflates less.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from bench._common import open_chain
from bench._server import api_server
from bench.bench_receipts import _cpu_seconds
from bench.bench_registration import _api_op, _Baselines, _rate


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab_registration")
    parser.add_argument("base", type=Path, help="a checkout of the version to compare with")
    parser.add_argument("--n", type=int, default=20, help="uploads per run")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    base_env = {"PYTHONPATH": str(args.base.resolve())}
    with (
        tempfile.TemporaryDirectory() as tmp,
        open_chain("embedded-disk", Path(tmp) / "baseline") as chain,
        api_server(Path(tmp) / "base", base_env) as base,
        api_server(Path(tmp) / "this") as this,
        base.client() as base_http,
        this.client() as this_http,
    ):
        baselines = _Baselines(chain)
        ops = {
            "base": _api_op(base_http),
            "this": _api_op(this_http),
            "web3": baselines.web3_transact,
        }
        for op in ops.values():  # warm-up: imports, caches, first blocks
            for _ in range(3):
                op()
        pids = {"base": base.pid, "this": this.pid}
        rates: dict[str, list[float]] = {name: [] for name in ops}
        cpu = {name: 0.0 for name in pids}
        for run in range(args.runs):
            order = list(ops) if run % 2 == 0 else list(reversed(ops))
            for name in order:
                before = _cpu_seconds(pids[name]) if name in pids else 0.0
                rates[name].append(_rate(ops[name], args.n))
                if name in pids:
                    cpu[name] += _cpu_seconds(pids[name]) - before
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.1f}/s" for k, v in rates.items()))
    median = {name: statistics.median(r) for name, r in rates.items()}

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(rates[a], rates[b], strict=True))

    per_upload = {name: cpu[name] / (args.n * args.runs) * 1e3 for name in cpu}
    print(
        f"service CPU per upload: base {per_upload['base']:.1f} ms, "
        f"this {per_upload['this']:.1f} ms"
    )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    print(f"base {median['base']:.1f}/s, this {median['this']:.1f}/s, web3 {median['web3']:.1f}/s")
    print(
        f"base/web3 {ratio('base', 'web3'):.2f}x, this/web3 {ratio('this', 'web3'):.2f}x, "
        f"this/base {ratio('this', 'base'):.2f}x"
    )


if __name__ == "__main__":
    main()

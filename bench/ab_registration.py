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
With many short runs (``--n 5 --runs 40``) the pooled figures (all uploads over all their time)
are the steadier ones.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench._common import cpu_seconds, open_chain
from bench._server import api_server
from bench.bench_registration import _api_op, _Baselines, _rate


@contextmanager
def _inside(folder: Path) -> Iterator[None]:
    """Work in ``folder`` (the services started meanwhile inherit it), then go back."""
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab_registration")
    parser.add_argument("base", type=Path, help="a checkout of the version to compare with")
    parser.add_argument("--n", type=int, default=20, help="uploads per run")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    # Each service imports its own checkout: PYTHONPATH names it, and the services start in a
    # folder that holds none (``python -m`` puts its working directory before PYTHONPATH).
    this_env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    base_env = {"PYTHONPATH": str(args.base.resolve())}
    with (
        tempfile.TemporaryDirectory() as tmp,
        _inside(Path(tmp)),
        open_chain("embedded-disk", Path(tmp) / "baseline") as chain,
        api_server(Path(tmp) / "base", base_env) as base,
        api_server(Path(tmp) / "this", this_env) as this,
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
        cpu: dict[str, list[float]] = {name: [] for name in pids}  # ms per upload, each run
        for run in range(args.runs):
            order = list(ops) if run % 2 == 0 else list(reversed(ops))
            for name in order:
                before = cpu_seconds(pids[name]) if name in pids else 0.0
                rates[name].append(_rate(ops[name], args.n))
                if name in pids:
                    cpu[name].append((cpu_seconds(pids[name]) - before) / args.n * 1e3)
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.1f}/s" for k, v in rates.items()))
    median = {name: statistics.median(r) for name, r in rates.items()}

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(rates[a], rates[b], strict=True))

    cpu_ratio = statistics.median(t / b for t, b in zip(cpu["this"], cpu["base"], strict=True))
    print(
        f"service CPU per upload (median of runs): base {statistics.median(cpu['base']):.1f} ms, "
        f"this {statistics.median(cpu['this']):.1f} ms; this/base {cpu_ratio:.2f}x"
    )
    pooled = {name: len(r) * args.n / sum(args.n / x for x in r) for name, r in rates.items()}
    cpu_pooled = {name: statistics.fmean(c) for name, c in cpu.items()}
    print(
        f"pooled over all runs: base {pooled['base']:.1f}/s, this {pooled['this']:.1f}/s, "
        f"web3 {pooled['web3']:.1f}/s; this/base {pooled['this'] / pooled['base']:.2f}x, "
        f"this/web3 {pooled['this'] / pooled['web3']:.2f}x; CPU per upload base "
        f"{cpu_pooled['base']:.1f} ms, this {cpu_pooled['this']:.1f} ms "
        f"({cpu_pooled['this'] / cpu_pooled['base']:.2f}x)"
    )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    print(f"base {median['base']:.1f}/s, this {median['this']:.1f}/s, web3 {median['web3']:.1f}/s")
    print(
        f"base/web3 {ratio('base', 'web3'):.2f}x, this/web3 {ratio('this', 'web3'):.2f}x, "
        f"this/base {ratio('this', 'base'):.2f}x"
    )


if __name__ == "__main__":
    main()

"""Two versions of one replica on PostgreSQL side by side, with the single SQLite process as
the yardstick: issue 22's "1 replica >= 0.8x SQLite" row, paired round by round.

    git archive BASE | tar -x -C /tmp/base   # plus the built extensions (see BENCHMARKS.md)
    python -m bench.ab_replicas /tmp/base [--rounds 12] [--clients 16] [--requests 8]

Three setups, each on its own anvil node (automining), all up at once: ``sqlite`` and
``pg-1`` of this checkout, ``pg-1 base`` of the other (run with this interpreter and
``PYTHONPATH`` set to it, from a folder that holds neither checkout, since ``python -m`` puts
its working directory first). Each round, in a rotating order, ``clients`` threads send
``requests`` uploads each to every setup (as :func:`bench.bench_replicas.registrations`).
Printed: registrations/s, the service's CPU per upload (user + system) and uploads a
transaction (anvil mines one a block), medians of the rounds, and the ratios within each
round (their medians and ranges): on a machine whose speed moves by half from minute to
minute, only the paired ratios compare.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench._common import cpu_seconds
from bench.ab_registration import _inside
from bench.bench_replicas import registrations, replicas
from ledger.chain.devnode import AnvilNode


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab_replicas")
    parser.add_argument("base", type=Path, help="a checkout of the version to compare with")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=8, help="uploads per client a round")
    args = parser.parse_args()
    this = {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    setups = {"sqlite": (None, this), "pg-1": (1, this),
              "pg-1 base": (1, {"PYTHONPATH": str(args.base.resolve())})}  # fmt: skip
    rates: dict[str, list[float]] = {name: [] for name in setups}
    cpu: dict[str, list[float]] = {name: [] for name in setups}
    gathered: dict[str, list[float]] = {name: [] for name in setups}  # uploads a transaction
    nodes: dict[str, list[AnvilNode]] = {name: [] for name in setups}
    uploads = args.clients * args.requests
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ab-replicas-")))
        stack.enter_context(_inside(tmp))
        running = {
            name: stack.enter_context(
                replicas(tmp / name.replace(" ", "-"), count, None, nodes[name], env=env)
            )
            for name, (count, env) in setups.items()
        }
        names = list(setups)
        for round_ in range(args.rounds):
            for name in names[round_ % 3 :] + names[: round_ % 3]:
                [server], [node] = running[name], nodes[name]
                before, head = cpu_seconds(server.pid), int(node.rpc("eth_blockNumber"), 16)
                rates[name].append(registrations([server], args.clients, args.requests))
                cpu[name].append((cpu_seconds(server.pid) - before) / uploads * 1e3)
                gathered[name].append(uploads / (int(node.rpc("eth_blockNumber"), 16) - head))
            figures = (
                f"{n} {rates[n][-1]:.1f}/s {cpu[n][-1]:.1f} ms {gathered[n][-1]:.1f}/tx"
                for n in names
            )
            print(f"round {round_ + 1}: " + ", ".join(figures), flush=True)
    for name in names:
        print(f"{name}: median {statistics.median(rates[name]):.1f} registrations/s, "
              f"{statistics.median(cpu[name]):.1f} ms of service CPU an upload, "
              f"{statistics.median(gathered[name]):.1f} uploads a transaction")  # fmt: skip
    for a, b in (("pg-1", "sqlite"), ("pg-1 base", "sqlite"), ("pg-1", "pg-1 base")):
        ratios = sorted(x / y for x, y in zip(rates[a], rates[b], strict=True))
        print(f"{a} / {b}: median {statistics.median(ratios):.2f}x "
              f"(rounds {ratios[0]:.2f}x-{ratios[-1]:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()

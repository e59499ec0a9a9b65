"""Only the anvil rows of issue 21, without the rest of the registration benchmark: 32 clients
sending one file per request answered on acceptance, and 32 clients x 10 files per request
answered when final (on inclusion at anvil's 0 confirmations), on anvil ``--block-time 1``.

    python -m bench._acceptance_only [requests per client, default 10] [--baseline DIR] [--rows N]
    python -m bench._acceptance_only [requests per client] --baseline DIR --interleave ROUNDS

Each row runs twice, with the httpx clients the registration benchmark always used and with
:mod:`bench._lean_client` (the same request bodies, built before the clock starts, over
``http.client``), and says how much CPU each record cost the clients and the service: on a
2-core machine the clients' CPU is taken from the service. ``--baseline DIR`` first runs the
same rows against the service's code in ``DIR`` (e.g. ``git archive main | tar -x -C DIR``),
on a fresh node, so that a change is read against a baseline of the same minute.

``--interleave ROUNDS`` (with ``--baseline``) runs only the acceptance row with the lean client,
both services up at once (each on its own anvil): short windows of the same load take turns,
baseline then this tree then this tree then baseline..., after one warm-up window each, and the
service's CPU per record is summed up per side (median, min, max). On a machine whose load moves
by a factor of two from minute to minute, this pairs each window with one of the same minute.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench._common import fmt
from bench._gathered import ChainView, LoadResult, run_clients
from bench._server import rpc_service_env, served_from
from ledger.chain.devnode import AnvilNode

# (files per request, answered on acceptance, lean client)
ROWS = [(1, True, False), (1, True, True), (10, False, False), (10, False, True), (1, False, True)]


def _line(label: str, reqs: int, files: int, accepted: bool, lean: bool, r: LoadResult) -> str:
    how = "on acceptance" if accepted else "when final"
    drained = r.records / r.drained if accepted else r.per_second
    client = "lean client " if lean else "httpx client"
    service_ms = r.cpu_ms(r.service_cpu)
    return (
        f"{label}: 32 clients x {reqs} requests x {files} file(s), answered {how}, {client}: "
        f"{fmt(r.per_second)} records/s answered, {fmt(drained)}/s on chain "
        f"({r.records} records, {r.transactions} txs, {r.record_blocks} blocks); CPU per record: "
        f"clients {r.cpu_ms(r.client_cpu):.2f} ms, service {service_ms:.2f} ms "
        f"(one core's worth: {fmt(1000 / service_ms)} records/s)"
    )


def run(label: str, requests: int, source: Path | None, rows: int = len(ROWS)) -> None:
    # the baseline's packages first on the service's path (before the editable install)
    env_extra = {"PYTHONPATH": str(source)} if source else {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with AnvilNode(work / "anvil-1s", block_time=1) as node:
            env = {**rpc_service_env(node, work / "svc"), **env_extra}
            with ExitStack() as stack:
                server = stack.enter_context(served_from(work / "svc", env, source))
                http = stack.enter_context(server.client(timeout=600))
                view = ChainView(http)
                for files, accepted, lean in ROWS[:rows]:
                    reqs = requests if files == 1 else max(1, requests // 3)
                    result = run_clients(
                        lambda: server.client(timeout=600),
                        view,
                        clients=32,
                        requests=reqs,
                        files_per_request=files,
                        accepted=accepted,
                        lean=(server.url, server.headers) if lean else None,
                        service_pid=server.pid,
                    )
                    print(_line(label, reqs, files, accepted, lean, result), flush=True)


def interleaved(requests: int, source: Path, rounds: int) -> None:
    """The acceptance row, lean client, baseline and this tree taking turns (see the module)."""
    sides: list[tuple[str, Path | None]] = [("baseline", source), ("this tree", None)]
    cpu: dict[str, list[float]] = {label: [] for label, _ in sides}
    rate: dict[str, list[float]] = {label: [] for label, _ in sides}
    with ExitStack() as stack:
        served = []
        for label, tree in sides:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            node = stack.enter_context(AnvilNode(work / "anvil-1s", block_time=1))
            env = rpc_service_env(node, work / "svc")
            if tree is not None:
                env["PYTHONPATH"] = str(tree)
            server = stack.enter_context(served_from(work / "svc", env, tree))
            view = ChainView(stack.enter_context(server.client(timeout=600)))
            served.append((label, server, view))
        for turn in range(rounds + 1):
            for label, server, view in served if turn % 2 == 0 else served[::-1]:
                result = run_clients(
                    lambda server=server: server.client(timeout=600),
                    view,
                    clients=32,
                    requests=requests,
                    files_per_request=1,
                    accepted=True,
                    lean=(server.url, server.headers),
                    service_pid=server.pid,
                )
                service_ms = result.cpu_ms(result.service_cpu)
                if turn:  # the first window of each side warms it up
                    cpu[label].append(service_ms)
                    rate[label].append(result.per_second)
                print(
                    f"{label}{' (warm-up)' if not turn else ''}: {fmt(result.per_second)} "
                    f"records/s answered, service {service_ms:.2f} ms per record "
                    f"(load average {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
    for label, values in cpu.items():
        print(
            f"{label}: service CPU per record median {statistics.median(values):.2f} ms "
            f"(min {min(values):.2f}, max {max(values):.2f}, {len(values)} windows); "
            f"answered median {fmt(statistics.median(rate[label]))} records/s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("requests", type=int, nargs="?", default=10)
    parser.add_argument("--baseline", type=Path, help="a source tree to serve first, as baseline")
    parser.add_argument("--rows", type=int, default=len(ROWS), help="only the first N rows")
    parser.add_argument(
        "--interleave", type=int, metavar="ROUNDS", help="acceptance row only, sides taking turns"
    )
    args = parser.parse_args()
    if args.interleave:
        if args.baseline is None:
            parser.error("--interleave needs --baseline")
        interleaved(args.requests, args.baseline.resolve(), args.interleave)
        return
    if args.baseline is not None:
        run("baseline", args.requests, args.baseline.resolve(), args.rows)
    run("this tree", args.requests, None, args.rows)


if __name__ == "__main__":
    main()

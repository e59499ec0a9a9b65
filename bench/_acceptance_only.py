"""Only the anvil rows of issue 21, without the rest of the registration benchmark: 32 clients
sending one file per request answered on acceptance, and 32 clients x 10 files per request
answered when final (on inclusion at anvil's 0 confirmations), on anvil ``--block-time 1``.

    python -m bench._acceptance_only [requests per client, default 10] [--baseline DIR] [--rows N]

Each row runs twice, with the httpx clients the registration benchmark always used and with
:mod:`bench._lean_client` (the same request bodies, built before the clock starts, over
``http.client``), and says how much CPU each record cost the clients and the service: on a
2-core machine the clients' CPU is taken from the service. ``--baseline DIR`` first runs the
same rows against the service's code in ``DIR`` (e.g. ``git archive main | tar -x -C DIR``),
on a fresh node, so that a change is read against a baseline of the same minute.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench._common import fmt
from bench._gathered import ChainView, LoadResult, run_clients
from bench._server import Server, api_server, rpc_service_env
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


@contextmanager
def _served(work: Path, env: dict[str, str], source: Path | None) -> Iterator[Server]:
    """The service; from ``source`` if given (``python -m api`` puts its working directory
    first on its path, so the child starts there)."""
    here = Path.cwd()
    if source:
        os.chdir(source)
    try:
        starting = api_server(work, env)
        server = starting.__enter__()
    finally:
        os.chdir(here)
    try:
        yield server
    finally:
        starting.__exit__(None, None, None)  # stops the service


def run(label: str, requests: int, source: Path | None, rows: int = len(ROWS)) -> None:
    # the baseline's packages first on the service's path (before the editable install)
    env_extra = {"PYTHONPATH": str(source)} if source else {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with AnvilNode(work / "anvil-1s", block_time=1) as node:
            env = {**rpc_service_env(node, work / "svc"), **env_extra}
            with ExitStack() as stack:
                server = stack.enter_context(_served(work / "svc", env, source))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("requests", type=int, nargs="?", default=10)
    parser.add_argument("--baseline", type=Path, help="a source tree to serve first, as baseline")
    parser.add_argument("--rows", type=int, default=len(ROWS), help="only the first N rows")
    args = parser.parse_args()
    if args.baseline is not None:
        run("baseline", args.requests, args.baseline.resolve(), args.rows)
    run("this tree", args.requests, None, args.rows)


if __name__ == "__main__":
    main()

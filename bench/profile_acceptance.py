"""py-spy on the service during issue 21's acceptance row: 32 lean clients sending one file a
request, answered on acceptance (``?wait=accepted``), on anvil ``--block-time 1``.

    python -m bench.profile_acceptance OUT.txt [requests per client, default 30] [--gil]

Writes py-spy's raw (collapsed) stacks to OUT.txt and prints the rate answered and the
service's CPU per record. The shares quoted in BENCHMARKS.md ("Issue 21, fourth session") are
each function's samples, inclusive, over all samples of the file.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench._common import py_spy_sampling
from bench._gathered import ChainView, run_clients
from bench._server import api_server, rpc_service_env
from ledger.chain.devnode import AnvilNode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("requests", type=int, nargs="?", default=30)
    parser.add_argument("--gil", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with AnvilNode(work / "anvil", block_time=1) as node:
            env = rpc_service_env(node, work / "svc")
            with (
                api_server(work / "svc", env) as server,
                server.client(timeout=600) as http,
                py_spy_sampling(server.pid, args.out.resolve(), gil=args.gil),
            ):
                result = run_clients(
                    lambda: server.client(timeout=600),
                    ChainView(http),
                    clients=32,
                    requests=args.requests,
                    files_per_request=1,
                    accepted=True,
                    lean=(server.url, server.headers),
                    service_pid=server.pid,
                )
    print(
        f"{result.per_second:.1f} records/s answered; service CPU "
        f"{result.cpu_ms(result.service_cpu):.2f} ms per record"
    )


if __name__ == "__main__":
    main()

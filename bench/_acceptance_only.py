"""Only the anvil rows of issue 21, without the rest of the registration benchmark: 32 clients
sending one file per request answered on acceptance, and 32 clients x 10 files per request
answered when final (on inclusion at anvil's 0 confirmations), on anvil ``--block-time 1``.

    python -m bench._acceptance_only [requests per client, default 10]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench._common import fmt
from bench._gathered import ChainView, run_clients
from bench._server import api_server, rpc_service_env
from ledger.chain.devnode import AnvilNode


def main(requests: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with AnvilNode(work / "anvil-1s", block_time=1) as node:
            env = rpc_service_env(node, work / "svc")
            with api_server(work / "svc", env) as server, server.client(timeout=600) as http:
                view = ChainView(http)
                for files, accepted in ((1, True), (10, False), (1, False)):
                    reqs = requests if files == 1 else max(1, requests // 3)
                    result = run_clients(
                        lambda: server.client(timeout=600),
                        view,
                        clients=32,
                        requests=reqs,
                        files_per_request=files,
                        accepted=accepted,
                    )
                    how = "on acceptance" if accepted else "when final"
                    drained = result.records / result.drained if accepted else result.per_second
                    print(
                        f"32 clients x {reqs} requests x {files} file(s), answered {how}: "
                        f"{fmt(result.per_second)} records/s answered, {fmt(drained)}/s on chain "
                        f"({result.records} records, {result.transactions} txs, "
                        f"{result.record_blocks} blocks)",
                        flush=True,
                    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)

"""The real service in a child process on a free loopback port, as a client would meet it.

Every server a benchmark starts listens on 127.0.0.1 and is stopped (SIGTERM, then SIGKILL after
30 s) when its ``with`` block ends, whatever happened inside.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from api.devserver import ServiceProcess

__all__ = [
    "Server",
    "SharedService",
    "api_server",
    "rpc_service_env",
    "rss_mb",
    "served_from",
    "service",
]

_START_TIMEOUT = 120.0


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path
    started_in: float

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def headers(self) -> dict[str, str]:
        """The admin API key the service wrote on first start, if it has API keys at all."""
        key_file = self.data_dir / "admin.key"
        if key_file.exists():
            return {"Authorization": f"Bearer {key_file.read_text().strip()}"}
        return {}

    def client(self, timeout: float = 120.0, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout, **kwargs)

    def rss(self) -> dict[str, float]:
        return rss_mb(self.pid)


def rss_mb(pid: int) -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory of a process, in MB (10**6 bytes)."""
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            figures[key] = int(value.split()[0]) * 1024 / 1e6
    return {"rss_mb": figures.get("VmRSS", 0.0), "peak_rss_mb": figures.get("VmHWM", 0.0)}


@contextmanager
def api_server(
    work: Path, env: dict[str, str] | None = None, module: str = "api"
) -> Iterator[Server]:
    """``provenance serve`` (``python -m MODULE serve``) on a fresh port with its data under
    ``work/data``; waits for ``/healthz`` and stops the process on exit."""
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with ServiceProcess(
        work / "data", env=env, start_timeout=_START_TIMEOUT, module=module
    ) as process:
        yield Server(
            process.url,
            process.process,
            process.data_dir,
            process.log_path,
            time.perf_counter() - started,
        )


@contextmanager
def served_from(work: Path, env: dict[str, str], source: Path | None) -> Iterator[Server]:
    """:func:`api_server`, running the service's code in ``source`` if given (a baseline
    unpacked with ``git archive``; ``python -m api`` puts its working directory first on its
    path, so the child starts there, and ``env`` should put ``source`` on ``PYTHONPATH``)."""
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


class SharedService:
    """One default-settings service for every benchmark of a quick run (start-up costs ~8 s of
    imports on 2 cores, a large share of a 2-minute budget). Started on first use, stopped by
    :meth:`close`."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self._stack = ExitStack()
        self._server: Server | None = None

    def get(self) -> Server:
        if self._server is None:
            self._server = self._stack.enter_context(api_server(self.work))
        return self._server

    def close(self) -> None:
        self._stack.close()


@contextmanager
def service(config: Any, work: Path, env: dict[str, str] | None = None) -> Iterator[Server]:
    """A default embedded service: the quick run's shared one when there is one and ``env`` asks
    for nothing special, else a fresh one of its own under ``work``."""
    shared = getattr(config, "shared", None)
    if shared is not None and not env:
        yield shared.get()
        return
    with api_server(work, env) as server:
        yield server


_PASSWORD = "benchmark-only password"


def rpc_service_env(node: Any, work: Path) -> dict[str, str]:
    """Ready a data directory for the service on an anvil node: a keystore holding a funded
    key, and the ledger deployed with its deployment record, as `provenance deploy` leaves it.
    Returns the environment that makes `provenance serve` use that node."""
    from ledger.chain.backends.rpc import RpcBackend
    from ledger.chain.deployment import deploy_ledger
    from ledger.chain.keys import create_keystore

    data_dir = work / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    keystore = work / "keystore.json"
    account = create_keystore(keystore, _PASSWORD)
    node.set_balance(account.address, 10**24)
    deploy_ledger(RpcBackend(node.url), account, data_dir / "deployment.json")
    return {
        "PROVENANCE_CHAIN": "rpc",
        "PROVENANCE_RPC_URL": node.url,
        "PROVENANCE_KEYSTORE": str(keystore),
        "PROVENANCE_KEYSTORE_PASSWORD": _PASSWORD,
    }

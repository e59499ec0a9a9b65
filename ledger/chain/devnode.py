"""Start and stop a local anvil node: for tests, benchmarks and developers trying the RPC path.

anvil comes from the npm package ``@foundry-rs/anvil-linux-amd64`` pinned in
``contracts/package.json``. It writes a state snapshot per block under ``~/.foundry`` unless
told otherwise, so every node gets a ``--cache-path`` inside its own directory and
``--prune-history`` to keep memory and speed flat as its chain grows.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from web3 import HTTPProvider, Web3

from ledger.chain._paths import NODE_MODULES

__all__ = ["AnvilNode", "anvil_binary", "free_port"]


def anvil_binary() -> Path | None:
    """The anvil executable: ``$ANVIL_BINARY``, the npm package's, or one on PATH."""
    if configured := os.environ.get("ANVIL_BINARY"):
        return Path(configured)
    packaged = NODE_MODULES / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if packaged.exists():
        return packaged
    found = shutil.which("anvil")
    return Path(found) if found else None


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AnvilNode:
    """An anvil process on a free loopback port, stopped by :meth:`stop` or the ``with`` block."""

    def __init__(
        self,
        work_dir: Path,
        *,
        chain_id: int = 31337,
        port: int | None = None,
        state: Path | None = None,
        block_time: float | None = None,
        mining: bool = True,
    ) -> None:
        """``state``: a file anvil loads at start and writes back when stopped, so a node can
        be stopped and started again with its chain intact. ``block_time``: mine a block every
        so many seconds, as a real chain does, instead of one per transaction the moment it
        arrives. ``mining=False``: mine only when asked (:meth:`mine`), for tests that must
        hold transactions in the pool."""
        if block_time is not None and not mining:
            raise ValueError("a node mines on a block time or not at all, not both")
        binary = anvil_binary()
        if binary is None:
            raise FileNotFoundError("anvil not found: run `npm ci --prefix contracts`")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        work_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(work_dir / "anvil.log", "wb")  # noqa: SIM115 - lives as long as the node
        self._process = subprocess.Popen(
            [
                str(binary),
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--chain-id", str(chain_id),
                "--cache-path", str(work_dir / "cache"),
                "--prune-history", "256",  # recent states only: "latest" must not vanish
                "--accounts", "2",
                *(["--state", str(state)] if state else []),
                *(["--block-time", f"{block_time:g}"] if block_time is not None else []),
                *([] if mining else ["--no-mining"]),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._wait_ready()

    def _wait_ready(self, timeout: float = 20.0) -> None:
        w3 = Web3(HTTPProvider(self.url, request_kwargs={"timeout": 1}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"anvil exited with {self._process.returncode}")
            try:
                if w3.eth.block_number >= 0:
                    return
            except Exception:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"anvil did not answer on {self.url} within {timeout} s")

    def set_balance(self, address: str, wei: int) -> None:
        """Fund ``address`` (anvil's ``anvil_setBalance`` cheat code)."""
        self.rpc("anvil_setBalance", address, hex(wei))

    def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` blocks now, with whatever the pool holds that pays the base fee."""
        for _ in range(blocks):
            self.rpc("evm_mine")

    def rpc(self, method: str, *params: Any) -> Any:
        """Call one JSON-RPC method (cheat codes included); raises on an error answer."""
        answer = Web3(HTTPProvider(self.url)).provider.make_request(method, list(params))  # type: ignore[arg-type]
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result")

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()

    def __enter__(self) -> AnvilNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

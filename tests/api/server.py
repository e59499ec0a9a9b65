"""Start the real service in a child process on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from ledger.devnode import free_port


def start_server(data_dir: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Launch `provenance serve` and wait for /healthz; returns (process, base URL)."""
    port = free_port()
    log = open(data_dir.parent / f"server-{port}.log", "wb")  # noqa: SIM115 - child's stdout
    process = subprocess.Popen(
        [sys.executable, "-m", "api", "serve", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}: see {log.name}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return process, base_url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise TimeoutError("the server did not answer /healthz within 60 s")


def stop_server(process: subprocess.Popen, *, kill: bool = False) -> None:
    """SIGTERM (a clean stop) or SIGKILL (a crash), and wait for the process to end."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running_server(data_dir: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    process, base_url = start_server(data_dir, env)
    try:
        yield base_url
    finally:
        stop_server(process)

"""Run the real service in a child process on a free loopback port: for end-to-end tests,
crash tests and benchmarks, which must meet the service exactly as a client does.

``ServiceProcess`` starts ``python -m api serve`` on 127.0.0.1, waits for ``/healthz`` and always
stops the process when its ``with`` block ends (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from ledger.chain.devnode import free_port

__all__ = ["ServiceProcess"]


class ServiceProcess:
    """``provenance serve --data-dir DATA_DIR`` in a child process."""

    def __init__(
        self,
        data_dir: Path,
        *,
        env: dict[str, str] | None = None,
        start_timeout: float = 120.0,
        module: str = "api",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        child_env = {**os.environ, **(env or {})}
        child_env.pop("PROVENANCE_URL", None)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", module, "serve", "--host", "127.0.0.1",
                 "--port", str(self.port), "--data-dir", str(self.data_dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env,
            )  # fmt: skip
        try:
            self._wait_healthy(start_timeout)
        except BaseException:
            self.stop(kill=True)
            raise

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"the server did not answer /healthz within {timeout:.0f} s")

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def headers(self) -> dict[str, str]:
        """The admin API key the service wrote to its data directory on first start."""
        key = (self.data_dir / "admin.key").read_text().strip()
        return {"Authorization": f"Bearer {key}"}

    def client(self, timeout: float = 120.0, **kwargs: Any) -> httpx.Client:
        """An httpx client for this server, holding the admin key."""
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout, **kwargs)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, *, kill: bool = False, grace: float = 30.0) -> int:
        """SIGTERM (a clean stop) or SIGKILL (a crash); returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

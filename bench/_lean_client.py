"""A benchmark client that costs the machine as little as a client can, and CPU accounting.

The load benchmarks run their clients on the same 2 cores as the service they measure. Their
``httpx`` clients cost about 6 ms of CPU per one-file request (building the multipart body,
httpx's request and response machinery, in 32 threads under one GIL): as much as the service's
own work per accepted record, so a run measured the two together. This client sends the same
bytes (``multipart/form-data`` bodies built before the clock starts) over keep-alive
``http.client`` connections, about 0.3 ms per request, so that a figure is the service's.

:func:`own_cpu_seconds`, with :func:`bench._common.cpu_seconds` for the service's process, says
how much CPU each record cost the client and the service.
"""

from __future__ import annotations

import http.client
import json
import os
from typing import Any
from urllib.parse import urlsplit

__all__ = ["LeanClient", "multipart_body", "own_cpu_seconds"]

_BOUNDARY = "provenance-bench-7d1c"


def multipart_body(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with one ``file`` part per ``(name, content)``, and its
    content type: what httpx sends for ``files=[("file", (name, content)), ...]``."""
    parts = []
    for name, content in files:
        head = (
            f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{name}"\r\nContent-Type: text/csv\r\n\r\n'
        )
        parts.append(head.encode() + content + b"\r\n")
    body = b"".join(parts) + f"--{_BOUNDARY}--\r\n".encode()
    return body, f"multipart/form-data; boundary={_BOUNDARY}"


class LeanClient:
    """One keep-alive HTTP/1.1 connection to ``url``; one thread's."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float = 600.0) -> None:
        parts = urlsplit(url)
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        self._headers = headers

    def post(self, path: str, body: bytes, content_type: str) -> tuple[int, Any]:
        """POST ``body``; the status and the decoded JSON answer."""
        headers = {**self._headers, "Content-Type": content_type}
        self._conn.request("POST", path, body=body, headers=headers)
        answer = self._conn.getresponse()
        data = answer.read()
        return answer.status, json.loads(data) if data else None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LeanClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def own_cpu_seconds() -> float:
    """This process's user + system CPU seconds (all threads)."""
    times = os.times()
    return times.user + times.system

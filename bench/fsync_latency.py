"""How long one fsync of a small write takes on this disk, now: the floor under every durable
answer (a receipt, an accepted write), which moves with what else the machine is doing.

    python -m bench.fsync_latency [FOLDER]    (default: the current folder)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time


def main(folder: str) -> None:
    samples = []
    with tempfile.NamedTemporaryFile(dir=folder) as scratch:
        for _ in range(200):
            os.write(scratch.fileno(), b"x" * 4096)
            started = time.perf_counter()
            os.fsync(scratch.fileno())
            samples.append((time.perf_counter() - started) * 1e3)
    samples.sort()
    p99 = samples[int(len(samples) * 0.99) - 1]
    median = statistics.median(samples)
    print(f"fsync of 4 KiB, 200 times: median {median:.2f} ms, p99 {p99:.2f} ms")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")

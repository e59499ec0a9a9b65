"""Benchmark dataset content hashing: throughput and peak memory.

Why: the content hash of a dataset is SHA-256 of its exact bytes, computed by streaming
(``ml.hashing.sha256_file``). This script shows (1) that it runs at ``hashlib.file_digest``
speed and how it compares with the ``sha256sum`` command, and (2) that hashing a large file
keeps memory flat, by measuring the peak RSS of a child process that hashes a 1 GB file.

It prints figures and writes ``bench/results/hashing.json``; it never passes or fails on time.

    python -m bench.bench_hashing            # 256 MB throughput file, 1 GB RSS file, 7 runs
    python -m bench.bench_hashing --quick    # 32 MB, 128 MB, 3 runs

MB means 10**6 bytes. Throughput is measured on a file already in the page cache (it is read
once before timing), so it is the hashing cost, not the disk's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ml.hashing import sha256_file

__all__ = ["main"]

MB = 1_000_000
_BLOCK = 1 << 20
_RESULTS = Path(__file__).resolve().parent / "results" / "hashing.json"

# Run in a fresh interpreter: peak RSS after importing ml.hashing, then after hashing. The peak
# is the process's own VmHWM: ru_maxrss is not, because Linux carries the parent's high-water
# mark across fork and exec into the child (a large parent would show as the child's peak).
_RSS_CHILD = """
import json, sys
from ml.hashing import sha256_file
def peak_kb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
before = peak_kb()
digest = sha256_file(sys.argv[1])
after = peak_kb()
print(json.dumps({"before_kb": before, "after_kb": after, "digest": digest.hex()}))
"""


def _make_file(path: Path, size: int) -> None:
    """Write ``size`` bytes of random data (a repeated random block: SHA-256 cost is data-blind)."""
    block = os.urandom(_BLOCK)
    with open(path, "wb") as handle:
        remaining = size
        while remaining:
            chunk = block[: min(remaining, _BLOCK)]
            handle.write(chunk)
            remaining -= len(chunk)


def _warm(path: Path) -> None:
    with open(path, "rb") as handle:
        while handle.read(8 * _BLOCK):
            pass


def _file_digest(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").digest()


def _sha256sum(path: Path) -> bytes:
    out = subprocess.run(["sha256sum", str(path)], check=True, capture_output=True, text=True)
    return bytes.fromhex(out.stdout.split()[0])


def _time(fn: Callable[[Path], bytes], path: Path, runs: int) -> tuple[list[float], bytes]:
    seconds = []
    digest = b""
    for _ in range(runs):
        start = time.perf_counter()
        digest = fn(path)
        seconds.append(time.perf_counter() - start)
    return seconds, digest


def _summary(seconds: list[float], size: int) -> dict[str, float]:
    rates = sorted(size / MB / s for s in seconds)
    return {
        "median_mb_s": round(statistics.median(rates), 1),
        "min_mb_s": round(rates[0], 1),
        "max_mb_s": round(rates[-1], 1),
        "median_seconds": round(statistics.median(seconds), 4),
    }


def _peak_rss(path: Path) -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, str(path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=root,
    )
    child = json.loads(out.stdout)
    # /proc reports VmHWM in KiB.
    return {
        "rss_after_import_mb": round(child["before_kb"] * 1024 / MB, 1),
        "peak_rss_mb": round(child["after_kb"] * 1024 / MB, 1),
        "growth_while_hashing_mb": round((child["after_kb"] - child["before_kb"]) * 1024 / MB, 1),
        "digest": child["digest"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a table and write the JSON results; return them."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_hashing", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small files, 3 runs")
    parser.add_argument("--size-mb", type=int, help="throughput file size (MB)")
    parser.add_argument("--rss-size-mb", type=int, help="peak-memory file size (MB)")
    parser.add_argument("--runs", type=int, help="timed runs per method")
    parser.add_argument("--dir", type=Path, help="where to write the temporary files")
    parser.add_argument("--output", type=Path, default=_RESULTS)
    args = parser.parse_args(argv)
    size = (args.size_mb or (32 if args.quick else 256)) * MB
    rss_size = (args.rss_size_mb or (128 if args.quick else 1000)) * MB
    runs = args.runs or (3 if args.quick else 7)
    have_sha256sum = shutil.which("sha256sum") is not None

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-hashing-") as tmp:
        workdir = Path(tmp)
        free = shutil.disk_usage(workdir).free
        if free < (size + rss_size) * 1.2:
            sys.exit(f"not enough disk space in {workdir}: {free / MB:.0f} MB free")

        # 1. Throughput on a cached file.
        path = workdir / "throughput.bin"
        _make_file(path, size)
        _warm(path)
        methods: dict[str, Callable[[Path], bytes]] = {
            "ml.hashing.sha256_file": sha256_file,
            "hashlib.file_digest": _file_digest,
        }
        if have_sha256sum:
            methods["sha256sum"] = _sha256sum
        throughput: dict[str, dict[str, float]] = {}
        digests = set()
        for name, fn in methods.items():
            fn(path)  # one untimed warm-up run
            seconds, digest = _time(fn, path, runs)
            digests.add(digest)
            throughput[name] = _summary(seconds, size)
        if len(digests) != 1:
            sys.exit("the methods disagree on the digest: this is a bug")
        reference = throughput["hashlib.file_digest"]["median_mb_s"]
        for figures in throughput.values():
            figures["ratio_to_file_digest"] = round(figures["median_mb_s"] / reference, 3)
        path.unlink()

        # 2. Peak memory of hashing a large file in a fresh process.
        big = workdir / "large.bin"
        _make_file(big, rss_size)
        rss = _peak_rss(big)
        if bytes.fromhex(rss["digest"]) != _file_digest(big):
            sys.exit("the child process computed a different digest: this is a bug")
        rss.update(file_mb=rss_size // MB, under_100_mb=rss["peak_rss_mb"] < 100)

    results = {
        "benchmark": "hashing",
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "file_mb": size // MB,
        "runs": runs,
        "digest": next(iter(digests)).hex(),
        "throughput": throughput,
        "peak_memory": rss,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    print(f"SHA-256 throughput, {size // MB} MB cached file, median of {runs} runs (min-max):")
    for name, f in throughput.items():
        print(
            f"  {name:<24} {f['median_mb_s']:>8.1f} MB/s  ({f['min_mb_s']:.1f}-{f['max_mb_s']:.1f})"
            f"  x{f['ratio_to_file_digest']:.3f} of file_digest"
        )
    if not have_sha256sum:
        print("  sha256sum: not installed, skipped")
    print(
        f"Peak RSS hashing a {rss['file_mb']} MB file in a child process: "
        f"{rss['peak_rss_mb']} MB (after imports {rss['rss_after_import_mb']} MB, "
        f"growth {rss['growth_while_hashing_mb']} MB); under 100 MB: {rss['under_100_mb']}"
    )
    print(f"Results written to {args.output}")
    return results


if __name__ == "__main__":
    main()

"""Hashing and memory: content-hash throughput, the row Merkle root of 1,000,000 rows, and the
service's peak memory while it registers large CSV files.

(About 400 lines: each measurement runs in a child process, whose driver code lives here.)

1. **Content hash** (``bench/bench_hashing.py``, run as is): ``ml.hashing.sha256_file`` vs
   ``hashlib.file_digest`` (the limit) vs the ``sha256sum`` command on the same cached file
   (500 MB; 32 MB with ``--quick``), and the peak RSS of a child process hashing 1 GB.
2. **Row Merkle root**: ``StandardMerkleTree.of`` over ``[i, sha256(row_i)]`` leaves typed
   ``["uint256", "bytes32"]`` for 1,000,000 rows (100,000 with ``--quick``), 3 runs (each
   ~15 s at full size). Baselines in the same run, compared per leaf: the bare hashing a tree
   needs (2 keccak256 per leaf, 1 per inner node) in a plain Python loop with
   ``eth_utils.keccak``, on a tenth of the rows; and the reference implementation, npm
   ``@openzeppelin/merkle-tree`` under node, on 20,000 rows (2,000 quick: it does about 5,000
   leaves/s here). The same hashing loop is also run through ``ledger.formats._keccak``'s hashers,
   the native state (pycryptodome's compiled core through ctypes, what ``StandardMerkleTree.of``
   uses) and its pure fallback (``eth_hash``), so the native core's speed-up is measured in the
   same run.
3. **Peak RSS of the service registering a large CSV**: one ``provenance serve`` process
   (``PROVENANCE_MAX_UPLOAD_BYTES`` raised to fit) receives uploads of growing size through
   ``POST /v1/datasets``; before each upload its peak-RSS mark is reset (``/proc/PID/clear_refs``)
   and read again after, so each figure is that upload's own peak. Two shapes: *numeric*
   (5 numeric columns, ~26 bytes a row, the typical ML table; kept at 24 MB, the most the old
   in-memory registration was let take by ``max_rows``) and *text* (10 columns, ~1.2 KB a row;
   1 GB only with ~10 GB of memory available). The streaming registration of issue 14 is
   measured at 1 GB in both shapes by ``bench/bench_datasets.py``; once the service uses it,
   the numeric plan here can grow to 1 GB as well. Baseline: the idle service's RSS, measured
   right before each upload.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from eth_utils import keccak

from bench import bench_hashing
from bench._common import Config, fmt, print_table, scratch_dir, summarize, write_results
from bench._server import Server, service
from ledger.chain._paths import NODE_MODULES
from ledger.formats import _keccak
from ledger.formats.merkle import StandardMerkleTree

__all__ = ["run"]

MB = 1_000_000
# Text rows of ~1,200 bytes: 1 GB is ~840,000 rows and 8.4M cells, under the default caps of
# 1,000,000 rows (max_rows) and 10,000,000 cells (ml.datasets.Limits, not a setting).
_TEXT_FIELD = 128
_OZ_TREE = NODE_MODULES / "@openzeppelin" / "merkle-tree"
_OZ_SCRIPT = """
const { StandardMerkleTree } = require(process.argv[1]);
const crypto = require("crypto");
const n = parseInt(process.argv[2]);
const leaves = [];
for (let i = 0; i < n; i++) {
  const row = `[${i},${(i * 7) % 13},${i % 97}]`;
  leaves.push([i, "0x" + crypto.createHash("sha256").update(row).digest("hex")]);
}
const start = process.hrtime.bigint();
const tree = StandardMerkleTree.of(leaves, ["uint256", "bytes32"]);
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
process.stdout.write(JSON.stringify({ seconds, root: tree.root }));
"""


# -- 2. the row Merkle root ------------------------------------------------------------------


def _row_leaves(n: int) -> list[list[Any]]:
    return [
        [i, hashlib.sha256(f"[{i},{(i * 7) % 13},{i % 97}]".encode()).digest()] for i in range(n)
    ]


def _tree_seconds(leaves: list[list[Any]]) -> tuple[float, bytes]:
    start = time.perf_counter()
    tree = StandardMerkleTree.of(leaves, ["uint256", "bytes32"])
    return time.perf_counter() - start, tree.root


def _floor_seconds(leaves: list[list[Any]]) -> float:
    """The hashing alone: keccak(keccak(abi.encode(i, digest))) per leaf, one keccak per node."""
    encoded = [i.to_bytes(32, "big") + digest for i, digest in leaves]
    start = time.perf_counter()
    level = [keccak(keccak(e)) for e in encoded]
    while len(level) > 1:
        nxt = [
            keccak(a + b if a <= b else b + a)
            for a, b in zip(level[::2], level[1::2], strict=False)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return time.perf_counter() - start


def _hashers_seconds(leaves: list[list[Any]], hashers: _keccak.Hashers) -> tuple[float, bytes]:
    """The loop of :func:`_floor_seconds` through ``ledger.formats._keccak``'s leaf and node
    hashers."""
    encoded = [i.to_bytes(32, "big") + digest for i, digest in leaves]
    leaf, node = hashers.leaf, hashers.node
    start = time.perf_counter()
    level = [leaf(e) for e in encoded]
    while len(level) > 1:
        nxt = [node(a, b) for a, b in zip(level[::2], level[1::2], strict=False)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return time.perf_counter() - start, level[0]


def _reference_seconds(n: int) -> dict[str, Any] | None:
    if not (_OZ_TREE / "package.json").exists():
        return None
    out = subprocess.run(
        ["node", "-e", _OZ_SCRIPT, str(_OZ_TREE), str(n)],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    return json.loads(out.stdout)


def _merkle(config: Config) -> tuple[dict[str, Any], str]:
    n = config.pick(100_000, 1_000_000)
    reference_n = config.pick(2_000, 20_000)
    floor_n = n // 10
    leaves = _row_leaves(n)
    ours, floor, reference, native, fallback = [], [], [], [], []
    roots, keccak_roots = set(), set()
    native_hashers = _keccak.bulk_hashers()
    for _ in range(3):  # ~15 s a run at 1,000,000 rows: 3 runs, quick or full
        seconds, root = _tree_seconds(leaves)
        ours.append(seconds)
        roots.add(root)
        floor.append(_floor_seconds(leaves[:floor_n]))
        for hashers, times in ((native_hashers, native), (_keccak.FALLBACK, fallback)):
            seconds, root = _hashers_seconds(leaves[:floor_n], hashers)
            times.append(seconds)
            keccak_roots.add(root)
        ref = _reference_seconds(reference_n)
        if ref is not None:
            reference.append(ref["seconds"])
    if len(roots) != 1:
        raise RuntimeError("the Merkle root changed between runs: this is a bug")
    if len(keccak_roots) != 1:
        raise RuntimeError("the native keccak and its fallback disagree: this is a bug")
    # The same leaves in both implementations must give the same root (a correctness check).
    small = _row_leaves(reference_n)
    ref = _reference_seconds(reference_n)
    if ref is not None and ref["root"] != "0x" + _tree_seconds(small)[1].hex():
        raise RuntimeError("our root differs from @openzeppelin/merkle-tree's: this is a bug")
    s_ours, s_floor = summarize(ours), summarize(floor)
    per_leaf_ours = summarize([s / n * 1e6 for s in ours])
    per_leaf_ref = summarize([s / reference_n * 1e6 for s in reference]) if reference else None
    per_leaf_floor = summarize([s / floor_n * 1e6 for s in floor])
    per_leaf_native = summarize([s / floor_n * 1e6 for s in native])
    per_leaf_fallback = summarize([s / floor_n * 1e6 for s in fallback])
    speedup = summarize([f / s for f, s in zip(fallback, native, strict=True)])  # per run
    native_name = "native state" if native_hashers.native else "native UNAVAILABLE, fallback"
    rows = [
        [f"ledger.formats.merkle StandardMerkleTree.of, {n:,} rows", _s(s_ours),
         _cell(per_leaf_ours), "1"],
        [f"hashing only: keccak per leaf (x2) and node, Python loop (eth_utils), {floor_n:,} rows",
         _s(s_floor), _cell(per_leaf_floor),
         f"{per_leaf_ours['median'] / per_leaf_floor['median']:.2f}"],
        [f"hashing only: ledger.formats._keccak {native_name}, same loop, {floor_n:,} rows",
         _s(summarize(native)), _cell(per_leaf_native),
         f"{per_leaf_ours['median'] / per_leaf_native['median']:.2f}"],
        [f"hashing only: ledger.formats._keccak fallback (eth_hash), same loop, {floor_n:,} rows",
         _s(summarize(fallback)), _cell(per_leaf_fallback),
         f"{per_leaf_ours['median'] / per_leaf_fallback['median']:.2f}"],
    ]  # fmt: skip
    if per_leaf_ref is not None:
        rows.append(
            [
                f"@openzeppelin/merkle-tree (node), {reference_n:,} rows",
                _s(summarize(reference)),
                _cell(per_leaf_ref),
                f"{per_leaf_ours['median'] / per_leaf_ref['median']:.3f}",
            ]
        )
    table = print_table(
        "Row Merkle root, median of 3 runs (min-max)",
        ["implementation", "seconds", "us per leaf", "ours/this (time per leaf)"],
        rows,
    )
    figures = {
        "rows": n,
        "seconds": s_ours,
        "floor_rows": floor_n,
        "floor_seconds": s_floor,
        "floor_us_per_leaf": per_leaf_floor,
        "keccak_native": native_hashers.native,
        "keccak_native_us_per_leaf": per_leaf_native,
        "keccak_fallback_us_per_leaf": per_leaf_fallback,
        "keccak_native_speedup": speedup,
        "us_per_leaf": per_leaf_ours,
        "reference_rows": reference_n,
        "reference_us_per_leaf": per_leaf_ref,
        "root": "0x" + next(iter(roots)).hex(),
    }
    return figures, table


# -- 3. peak RSS registering large CSVs ------------------------------------------------------


def _write_csv(path: Path, size: int, shape: str, salt: str) -> int:
    """Write a CSV of about ``size`` bytes; return its number of data rows."""
    rows = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        if shape == "numeric":
            f.write(f"id,a,b,c,d_{salt}\n")  # the salt makes every file a new dataset
        else:
            f.write("id," + ",".join(f"c{j}" for j in range(9)) + "\n")
        pad = salt + "x" * (_TEXT_FIELD - len(salt))
        while f.tell() < size:
            if shape == "numeric":
                chunk = [
                    f"{i},{i % 997},{(i * 7) % 1013},{i * 0.5},{i % 2}\n"
                    for i in range(rows, rows + 10_000)
                ]
            else:
                chunk = [
                    f"{i}," + ",".join(f"{pad}{(i + j) % 1000:03d}" for j in range(9)) + "\n"
                    for i in range(rows, rows + 1_000)
                ]
            f.write("".join(chunk))
            rows += len(chunk)
    return rows


def _largest_text_mb() -> int:
    """1 GB if the machine can hold the service's ~9x peak for it, else the most that fits."""
    available = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            available = int(line.split()[1]) * 1024
    for size_mb in (1000, 512, 256):
        if size_mb * MB * 10 < available:
            return size_mb
    return 128


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)


def _upload(server: Server, http: Any, path: Path) -> dict[str, Any]:
    before = server.rss()
    _reset_peak(server.pid)
    start = time.perf_counter()
    with open(path, "rb") as handle:
        response = http.post("/v1/datasets", files={"file": (path.name, handle, "text/csv")})
    seconds = time.perf_counter() - start
    after = server.rss()
    if response.status_code != 201:
        raise RuntimeError(f"upload answered {response.status_code}: {response.text[:300]}")
    return {
        "seconds": seconds,
        "rss_before_mb": before["rss_mb"],
        "peak_rss_mb": after["peak_rss_mb"],
        "growth_mb": after["peak_rss_mb"] - before["rss_mb"],
        "rss_after_mb": after["rss_mb"],
    }


def _csv_memory(config: Config, work: Path) -> tuple[list[dict[str, Any]], str]:
    plan = config.pick(
        [("numeric", 1, 3), ("text", 8, 1)],
        [("numeric", 2, 3), ("numeric", 8, 3), ("numeric", 24, 3), ("text", 64, 3),
         ("text", _largest_text_mb(), 1)],
    )  # fmt: skip
    largest = max(size for _, size, _ in plan) * MB
    # Raise the upload limit only when the default (64 MiB) is too small.
    env = {"PROVENANCE_MAX_UPLOAD_BYTES": str(int(largest * 1.1))} if largest > 60 * MB else {}
    results = []
    with service(config, work / "service", env) as server, server.client(timeout=1800) as http:
        idle = server.rss()
        for shape, size_mb, runs in plan:
            uploads = []
            rows = 0
            for r in range(runs):
                path = work / f"{shape}-{size_mb}-{r}.csv"
                rows = _write_csv(path, size_mb * MB, shape, salt=os.urandom(4).hex())
                file_mb = path.stat().st_size / MB
                uploads.append(_upload(server, http, path))
                path.unlink()
            growth = summarize([u["growth_mb"] for u in uploads])
            results.append(
                {
                    "shape": shape,
                    "file_mb": file_mb,
                    "rows": rows,
                    "runs": uploads,
                    "seconds": summarize([u["seconds"] for u in uploads]),
                    "peak_rss_mb": summarize([u["peak_rss_mb"] for u in uploads]),
                    "rss_before_mb": summarize([u["rss_before_mb"] for u in uploads]),
                    "growth_mb": growth,
                    "growth_per_file_mb": growth["median"] / file_mb,
                }
            )
            peak = results[-1]["peak_rss_mb"]["median"]
            print(f"  {shape} {file_mb:.0f} MB ({rows:,} rows): peak {peak:.0f} MB", flush=True)
    table = print_table(
        f"Service peak RSS while registering one CSV through POST /v1/datasets (idle service: "
        f"{idle['rss_mb']:.0f} MB); median (min-max) of the runs shown",
        ["shape", "file MB", "rows", "runs", "seconds", "RSS before (baseline) MB",
         "peak RSS MB", "peak - before MB", "growth / file size"],
        [
            [r["shape"], f"{r['file_mb']:.0f}", f"{r['rows']:,}", str(len(r["runs"])),
             _cell(r["seconds"]), _cell(r["rss_before_mb"]), _cell(r["peak_rss_mb"]),
             _cell(r["growth_mb"]), f"{r['growth_per_file_mb']:.1f}x"]
            for r in results
        ],
    )  # fmt: skip
    return results, table


def run(config: Config) -> list[dict[str, Any]]:
    hashing_args = ["--runs", str(config.pick(3, max(config.runs, 5)))]
    hashing_args += ["--quick"] if config.quick else ["--size-mb", "500", "--rss-size-mb", "1000"]
    hashing_args += ["--dir", str(config.tmp)]
    print("Content hash (bench/bench_hashing.py):", flush=True)
    hashing = bench_hashing.main(hashing_args)
    print()
    merkle, merkle_table = _merkle(config)
    with scratch_dir(config, "memory-") as work:
        csv, csv_table = _csv_memory(config, work)
    write_results(
        "memory",
        {"hashing": hashing, "merkle": merkle, "csv_registration": csv},
        [merkle_table, csv_table],
    )
    through = hashing["throughput"]
    ours = through["ml.hashing.sha256_file"]
    floor_us = merkle["floor_us_per_leaf"]["median"]
    largest = csv[-1]
    numeric = [r for r in csv if r["shape"] == "numeric"][-1]
    return [
        {
            "benchmark": "hashing",
            "figure": f"content hash MB/s ({hashing['file_mb']} MB cached file)",
            "measured": fmt(ours["median_mb_s"]),
            "baseline": f"file_digest {fmt(through['hashlib.file_digest']['median_mb_s'])}"
            + (
                f", sha256sum {fmt(through['sha256sum']['median_mb_s'])}"
                if "sha256sum" in through
                else ""
            ),
            "ratio": f"{ours['ratio_to_file_digest']:.2f}",
            "target": ">= 0.8",
            "met": ours["ratio_to_file_digest"] >= 0.8,
        },
        {
            "benchmark": "hashing",
            "figure": f"row Merkle root, {merkle['rows']:,} rows",
            "measured": f"{fmt(merkle['seconds']['median'])} s",
            "baseline": f"keccak loop {fmt(merkle['floor_us_per_leaf']['median'])} us/leaf",
            "ratio": f"{merkle['us_per_leaf']['median'] / floor_us:.2f}",
            "target": "(none)",
            "met": None,
        },
        {
            "benchmark": "hashing",
            "figure": f"tree keccak, native state, {merkle['floor_rows']:,} rows"
            + ("" if merkle["keccak_native"] else " (native UNAVAILABLE)"),
            "measured": f"{fmt(merkle['keccak_native_us_per_leaf']['median'])} us/leaf",
            "baseline": f"eth_hash fallback "
            f"{fmt(merkle['keccak_fallback_us_per_leaf']['median'])} us/leaf",
            "ratio": f"{merkle['keccak_native_speedup']['median']:.2f}x faster",
            "target": "(none)",
            "met": None,
        },
        {
            "benchmark": "hashing",
            "figure": f"service peak RSS, {largest['file_mb']:.0f} MB {largest['shape']} CSV",
            "measured": f"{fmt(largest['peak_rss_mb']['median'])} MB",
            "baseline": f"idle {fmt(largest['rss_before_mb']['median'])} MB",
            "ratio": f"growth {largest['growth_per_file_mb']:.1f}x file",
            "target": "<= 150 MB",
            "met": largest["peak_rss_mb"]["median"] <= 150,
        },
        {
            "benchmark": "hashing",
            "figure": f"service peak RSS, {numeric['file_mb']:.0f} MB numeric CSV "
            f"({numeric['rows']:,} rows)",
            "measured": f"{fmt(numeric['peak_rss_mb']['median'])} MB",
            "baseline": f"idle {fmt(numeric['rss_before_mb']['median'])} MB",
            "ratio": f"growth {numeric['growth_per_file_mb']:.1f}x file",
            "target": "<= 150 MB",
            "met": numeric["peak_rss_mb"]["median"] <= 150,
        },
    ]


def _cell(s: dict[str, Any]) -> str:
    return f"{fmt(s['median'])} ({fmt(s['min'])}-{fmt(s['max'])})"


def _s(s: dict[str, Any]) -> str:
    return _cell(s)

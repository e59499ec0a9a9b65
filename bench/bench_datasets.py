"""Datasets at real size (issue 14): registration MB/s and peak RSS, and row-proof latency.

1. **Registration** of numeric and text CSVs of 24 MB, 200 MB and 1 GB (2 MB each with
   ``--quick``), each in a fresh child process that runs what ``Datasets.register`` runs below
   the chain: the upload streamed into the artifact store (``ArtifactStore.stage``), both scan
   passes (``ml.scanning.scan_file``: validate, type, hash, the canonical row digests) feeding
   the row index (``ledger.storage.row_index.RowIndexBuilder``: leaf hashes, sort, tree, on disk),
   and the commit. The child's peak RSS (VmHWM, reset after a warm-up registration) is compared with
   its RSS when idle, with everything imported. Baseline, in the same run on the same file:
   ``hashlib.file_digest`` (the content hash alone, from the page cache).
   Shapes as in ``bench/bench_memory.py``: *numeric* (5 columns, ~29 bytes a row) and *text*
   (10 columns of ~128 characters, ~1.2 KB a row).
2. **Row proof** at 10,000,000 rows (100,000 with ``--quick``): the latency of one proof from
   the on-disk index (a locator, the row read back and re-digested, a binary search among the
   sorted leaves, the group's leaves hashed, the top's nodes), over 200 random rows. Baseline
   in the same run: the old way, parsing the whole file and building the tree in memory, at
   100,000 rows (at 10 million it needs tens of GB).

Targets (issue 14), on 2 cores: >= 20 MB/s numeric and >= 50 MB/s text; peak RSS growth
<= 150 MB for a 1 GB file. Nothing passes or fails on time.

    python -m bench.bench_datasets [--quick]    # alone; or python -m bench --only datasets
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import Config, fmt, print_table, summarize, write_results

__all__ = ["run"]

MB = 1_000_000
_TEXT_FIELD = 124

# The child: warm up (imports, thread pools), reset the peak, register one file, report.
_CHILD = r"""
import json, sys, time
from pathlib import Path
from ledger.formats import _treehash
from ledger.storage.row_index import RowIndexBuilder
from ledger.storage.artifacts import ArtifactStore
from ml import scanning
from ml.datasets import Limits
from ml.hashing import canonical_json

def status(key):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

def register(store, path):
    times = {}
    t0 = time.perf_counter()
    with open(path, "rb") as stream:
        staged = store.stage(stream)
    t1 = time.perf_counter()
    built = store.scratch_path(".rows")
    with RowIndexBuilder(built) as rows:
        scan = scanning.scan_file(staged.path, Limits(), digests=rows.add)
        t2 = time.perf_counter()
        info = rows.finish(content=scan.content_hash, locators=scan.locators,
                           locator_stride=scan.locator_stride,
                           extra=canonical_json([c.to_json() for c in scan.columns]))
    t3 = time.perf_counter()
    store.commit(staged)
    store.commit_rows(staged.digest, info.path)
    t4 = time.perf_counter()
    return scan, info, {"stage": t1 - t0, "scan": t2 - t1, "tree": t3 - t2, "commit": t4 - t3,
                        "total": t4 - t0}

store = ArtifactStore(Path(sys.argv[2]))
warm = Path(sys.argv[2]) / "warm.csv"
warm.write_text("a,b\n" + "".join(f"{i},x{i}\n" for i in range(100_000)))
register(store, warm)
idle = status("VmRSS")
Path("/proc/self/clear_refs").write_text("5")
cpu = time.process_time()
scan, info, times = register(store, Path(sys.argv[1]))
cpu = time.process_time() - cpu
print(json.dumps({"idle_rss": idle, "peak_rss": status("VmHWM"), "times": times, "cpu": cpu,
                  "rows": scan.row_count, "engine": scan.engine, "native_tree": _treehash.NATIVE,
                  "simd": _treehash.SIMD, "root": info.root.hex(),
                  "content_hash": scan.content_hash.hex(),
                  "index_bytes": store.rows_path("0x" + scan.content_hash.hex()).stat().st_size}))
"""


def _write_csv(path: Path, size: int, shape: str) -> int:
    """A CSV of about ``size`` bytes in one of the two shapes; returns its data rows."""
    rows = 0
    pad = "x" * _TEXT_FIELD
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(
            "id,a,b,c,d\n"
            if shape == "numeric"
            else "id," + ",".join(f"c{j}" for j in range(9)) + "\n"
        )
        while handle.tell() < size:
            if shape == "numeric":
                chunk = [
                    f"{i},{i % 997},{(i * 7) % 1013},{i * 0.5},{i % 2}\n"
                    for i in range(rows, rows + 20_000)
                ]
            else:
                chunk = [
                    f"{i}," + ",".join(f"{pad}{(i + j) % 1000:03d}" for j in range(9)) + "\n"
                    for i in range(rows, rows + 1_000)
                ]
            handle.write("".join(chunk))
            rows += len(chunk)
    return rows  # fmt: skip


def _file_digest_mb_s(path: Path, runs: int) -> dict[str, Any]:
    size = path.stat().st_size
    speeds = []
    for _ in range(runs):
        start = time.perf_counter()
        with open(path, "rb") as handle:
            hashlib.file_digest(handle, "sha256")
        speeds.append(size / MB / (time.perf_counter() - start))
    return summarize(speeds)


def _register_in_child(path: Path, work: Path) -> dict[str, Any]:
    store = work / "store"
    shutil.rmtree(store, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(store)],
        capture_output=True, text=True, check=False, timeout=3600,
    )  # fmt: skip
    shutil.rmtree(store, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"registration child failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _registration(config: Config, work: Path) -> tuple[list[dict[str, Any]], str]:
    plan = config.pick(
        [("numeric", 2, 2), ("text", 2, 2)],
        [("numeric", 24, 3), ("numeric", 200, 2), ("numeric", 1000, 1),
         ("text", 24, 3), ("text", 200, 2), ("text", 1000, 1)],
    )  # fmt: skip
    results = []
    for shape, size_mb, runs in plan:
        path = work / f"{shape}-{size_mb}.csv"
        rows = _write_csv(path, size_mb * MB, shape)
        size = path.stat().st_size
        children, digests = [], []
        for _ in range(runs):
            children.append(_register_in_child(path, work))
            digests.append(_file_digest_mb_s(path, 3))
        if {c["content_hash"] for c in children} != {hashlib.sha256(path.read_bytes()).hexdigest()}:
            raise RuntimeError("the registered content hash is not the file's SHA-256: a bug")
        path.unlink()
        mb_s = summarize([size / MB / c["times"]["total"] for c in children])
        growth = summarize([(c["peak_rss"] - c["idle_rss"]) / MB for c in children])
        results.append(
            {
                "shape": shape,
                "file_mb": size / MB,
                "rows": rows,
                "runs": children,
                "mb_s": mb_s,
                "scan_and_tree_mb_s": summarize(
                    [size / MB / (c["times"]["scan"] + c["times"]["tree"]) for c in children]
                ),
                "cpu_mb_s": summarize([size / MB / c["cpu"] for c in children]),
                "file_digest_mb_s": summarize([d["median"] for d in digests]),
                "idle_rss_mb": summarize([c["idle_rss"] / MB for c in children]),
                "peak_growth_mb": growth,
                "index_bytes_per_row": children[0]["index_bytes"] / rows,
                "engine": children[0]["engine"],
                "native_tree": children[0]["native_tree"],
                "simd": children[0]["simd"],
            }
        )
        r = results[-1]
        print(
            f"  {shape} {r['file_mb']:.0f} MB ({rows:,} rows): {fmt(mb_s['median'])} MB/s, "
            f"peak growth {fmt(growth['median'])} MB",
            flush=True,
        )
    table = print_table(
        "Registration below the service (stage + both scan passes + row index + commit), one "
        "fresh process per run; median (min-max)",
        ["shape", "file MB", "rows", "runs", "MB/s", "scan+tree MB/s", "MB/s of CPU",
         "file_digest MB/s (baseline)", "idle RSS MB", "peak RSS growth MB", "index B/row"],
        [
            [r["shape"], f"{r['file_mb']:.0f}", f"{r['rows']:,}", str(len(r["runs"])),
             _cell(r["mb_s"]), _cell(r["scan_and_tree_mb_s"]), _cell(r["cpu_mb_s"]),
             _cell(r["file_digest_mb_s"]), _cell(r["idle_rss_mb"]), _cell(r["peak_growth_mb"]),
             f"{r['index_bytes_per_row']:.1f}"]
            for r in results
        ],
    )  # fmt: skip
    return results, table


def _proofs(config: Config, work: Path) -> tuple[dict[str, Any], str]:
    from ledger.formats.merkle import verify_proof
    from ledger.formats.rows import row_tree
    from ledger.storage.artifacts import ArtifactStore
    from ledger.storage.row_index import RowIndex
    from ml.datasets import Column, parse_dataset
    from ml.scanning import read_rows

    rows = config.pick(100_000, 10_000_000)
    path = work / "proof.csv"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("id,a,b,c,d\n")
        for start in range(0, rows, 50_000):
            handle.write("".join(f"{i},{i % 997},{(i * 7) % 1013},{i * 0.5},{i % 2}\n"
                                 for i in range(start, min(rows, start + 50_000))))  # fmt: skip
    store_dir = work / "proof-store"
    shutil.rmtree(store_dir, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(store_dir)],
        capture_output=True, text=True, check=True, timeout=3600,
    )  # fmt: skip
    child = json.loads(done.stdout.strip().splitlines()[-1])
    store = ArtifactStore(store_dir)
    content = "0x" + child["content_hash"]
    columns = [Column(n, t) for n, t in (("id", "integer"), ("a", "integer"), ("b", "integer"),
                                          ("c", "float"), ("d", "integer"))]  # fmt: skip
    rng = random.Random(14)
    picks = [0, rows - 1, *(rng.randrange(rows) for _ in range(200))]
    latencies = []
    with RowIndex(store.rows_path(content)) as index:
        root = index.root
        for i in picks:
            start = time.perf_counter()
            offset, skip = index.locator(i)
            [(_, digest)] = read_rows(
                store.path_of(content), columns, offset=offset, skip=skip, count=1
            )
            proof = index.proof(i, digest)
            latencies.append((time.perf_counter() - start) * 1e3)
            if not verify_proof(root, index.leaf_hash(i, digest), proof):
                raise RuntimeError("a proof from the index does not verify: a bug")
    # Baseline: the old row proof, which parsed the file and built the whole tree, at 100k rows.
    small = work / "proof-small.csv"
    with open(path, "rb") as src, open(small, "wb") as dst:
        for n, line in enumerate(src):
            if n > 100_000:
                break
            dst.write(line)
    old = []
    for _ in range(config.pick(1, 3)):
        start = time.perf_counter()
        dataset = parse_dataset(small.read_bytes())
        tree = row_tree(dataset.row_digests())
        tree.proof(50_000)
        old.append((time.perf_counter() - start) * 1e3)
    shutil.rmtree(store_dir, ignore_errors=True)
    path.unlink()
    small.unlink()
    figures = {
        "rows": rows,
        "latency_ms": summarize(latencies),
        "p95_ms": sorted(latencies)[int(0.95 * len(latencies))],
        "old_path_100k_rows_ms": summarize(old),
        "registration_seconds": child["times"]["total"],
        "index_bytes": child["index_bytes"],
    }
    table = print_table(
        f"Row proof from the on-disk index at {rows:,} rows ({len(picks)} rows: first, last, "
        "random); baseline: the old path (parse + tree in memory) at 100,000 rows",
        ["what", "median ms", "p95 ms", "min-max ms"],
        [
            [f"proof at {rows:,} rows (index {child['index_bytes'] / MB:.0f} MB)",
             fmt(figures["latency_ms"]["median"]), fmt(figures["p95_ms"]),
             f"{fmt(figures['latency_ms']['min'])}-{fmt(figures['latency_ms']['max'])}"],
            ["old path: parse + row_tree + proof, 100,000 rows",
             fmt(figures["old_path_100k_rows_ms"]["median"]), "-",
             f"{fmt(figures['old_path_100k_rows_ms']['min'])}-"
             f"{fmt(figures['old_path_100k_rows_ms']['max'])}"],
        ],
    )  # fmt: skip
    return figures, table


def run(config: Config) -> list[dict[str, Any]]:
    needed = config.pick(20, 4_500) * MB
    with tempfile.TemporaryDirectory(prefix="datasets-", dir=config.tmp) as tmp:
        work = Path(tmp)
        free = shutil.disk_usage(work).free
        if free < needed:
            raise RuntimeError(
                f"needs {needed / MB:.0f} MB of disk in {work}, {free / MB:.0f} free"
            )
        print("Registration:", flush=True)
        registration, reg_table = _registration(config, work)
        print("Row proofs:", flush=True)
        proofs, proof_table = _proofs(config, work)
    write_results(
        "datasets",
        {"registration": registration, "proofs": proofs},
        [reg_table, proof_table],
    )
    rows: list[dict[str, Any]] = []
    for shape, target in (("numeric", 20), ("text", 50)):
        largest = max((r for r in registration if r["shape"] == shape), key=lambda r: r["file_mb"])
        rows.append(
            {
                "benchmark": "datasets",
                "figure": f"registration MB/s, {largest['file_mb']:.0f} MB {shape} CSV",
                "measured": fmt(largest["mb_s"]["median"]),
                "baseline": f"file_digest {fmt(largest['file_digest_mb_s']['median'])} MB/s",
                "ratio": f"{largest['mb_s']['median'] / largest['file_digest_mb_s']['median']:.3f}",
                "target": f">= {target}",
                "met": largest["mb_s"]["median"] >= target,
            }
        )
        rows.append(
            {
                "benchmark": "datasets",
                "figure": f"peak RSS growth, {largest['file_mb']:.0f} MB {shape} CSV",
                "measured": f"{fmt(largest['peak_growth_mb']['median'])} MB",
                "baseline": f"idle {fmt(largest['idle_rss_mb']['median'])} MB",
                "ratio": "",
                "target": "<= 150 MB",
                "met": largest["peak_growth_mb"]["median"] <= 150,
            }
        )
    rows.append(
        {
            "benchmark": "datasets",
            "figure": f"row proof latency, {proofs['rows']:,} rows",
            "measured": f"{fmt(proofs['latency_ms']['median'])} ms",
            "baseline": "old path at 100k rows "
            f"{fmt(proofs['old_path_100k_rows_ms']['median'])} ms",
            "ratio": "",
            "target": "(none)",
            "met": None,
        }
    )
    return rows


def _cell(s: dict[str, Any]) -> str:
    return f"{fmt(s['median'])} ({fmt(s['min'])}-{fmt(s['max'])})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_datasets", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args(argv)
    config = Config(quick=args.quick, runs=3, tmp=args.tmp)
    for row in run(config):
        print(f"{row['figure']}: {row['measured']} (baseline {row['baseline']}; target "
              f"{row['target']})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

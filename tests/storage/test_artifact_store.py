"""The artifact store's conformance suite, run on a folder and on SeaweedFS's S3 alike: files
named by their SHA-256, re-hashed on every read, nothing kept of a refused or failed write, any
replica reading what another stored, row indexes beside the files, and a gigabyte-class file in
flat memory. S3-only: the object store away is a clear error that leaves nothing behind."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc

import pytest

from ledger.storage.artifacts import (
    ArtifactCorrupted,
    ArtifactMissing,
    StreamTooLarge,
)
from tests._servers import free_port
from tests.storage.conftest import StoreEngine

DATA = b"x1,x2,y\n100,200,5000\n"
DIGEST = "0x" + hashlib.sha256(DATA).hexdigest()


def _leftovers(engine: StoreEngine) -> list[str]:
    """Files left in the store's scratch area."""
    return sorted(os.listdir(engine.store.root / "tmp"))


def test_a_file_is_named_by_its_sha256_and_stored_once(engine: StoreEngine) -> None:
    store = engine.store
    assert DIGEST not in store
    assert store.put_bytes(DATA) == DIGEST
    assert store.put_bytes(DATA) == DIGEST  # the same bytes again: a no-op
    assert DIGEST in store
    assert store.read_bytes(DIGEST) == DATA
    assert store.verified_path(DIGEST).read_bytes() == DATA
    assert list(store.digests()) == [DIGEST]
    assert store.check_all() == []
    assert _leftovers(engine) == []


def test_another_replica_reads_what_one_stored(engine: StoreEngine) -> None:
    engine.store.put_bytes(DATA)
    other = engine.replica()
    assert DIGEST in other
    assert other.read_bytes(DIGEST) == DATA
    assert other.verified_path(DIGEST).read_bytes() == DATA
    assert other.path_of(DIGEST).read_bytes() == DATA


def test_a_stream_is_hashed_while_copied_and_over_its_limit_nothing_is_kept(engine) -> None:
    store = engine.store
    digest, size = store.put_stream(io.BytesIO(DATA))
    assert (digest, size) == (DIGEST, len(DATA))
    with pytest.raises(StreamTooLarge):
        store.put_stream(io.BytesIO(b"y" * 100), max_bytes=99)
    assert list(store.digests()) == [DIGEST] and _leftovers(engine) == []


def test_a_staged_file_is_stored_only_when_committed(engine: StoreEngine) -> None:
    store = engine.store
    refused = store.stage(io.BytesIO(b"refused"))
    store.discard(refused)
    staged = store.stage(io.BytesIO(DATA))
    assert staged.digest == DIGEST and DIGEST not in store
    assert store.commit(staged) == DIGEST
    assert list(store.digests()) == [DIGEST] and _leftovers(engine) == []
    with store.stage_output() as out:
        out.write(b"derived")
        made = out.finish()
    store.commit(made)
    assert engine.replica().read_bytes(made.digest) == b"derived"


def test_an_altered_file_is_caught_on_every_read(engine: StoreEngine) -> None:
    engine.store.put_bytes(DATA)
    engine.tamper(DIGEST, b"x1,x2,y\n100,200,9999\n")
    reader = engine.replica()  # a replica that has not read it yet
    for read in (reader.read_bytes, reader.verified_path):
        with pytest.raises(ArtifactCorrupted) as caught:
            read(DIGEST)
        assert caught.value.expected == DIGEST
    [finding] = engine.store.check_all()
    assert (finding.expected, finding.found) == (DIGEST, caught.value.found)
    assert _leftovers(engine) == []


def test_a_cached_copy_altered_on_disk_is_caught_too(engine: StoreEngine) -> None:
    engine.store.put_bytes(DATA)
    path = engine.store.verified_path(DIGEST)
    path.chmod(0o644)
    path.write_bytes(b"altered")
    with pytest.raises(ArtifactCorrupted):
        engine.store.read_bytes(DIGEST)
    with pytest.raises(ArtifactCorrupted):
        engine.store.verified_path(DIGEST)


def test_a_missing_file(engine: StoreEngine) -> None:
    with pytest.raises(ArtifactMissing):
        engine.store.read_bytes(DIGEST)
    with pytest.raises(ArtifactMissing):
        engine.store.verified_path(DIGEST)
    assert not engine.store.path_of(DIGEST).exists()


def test_row_indexes_live_beside_the_files_and_follow_them(engine: StoreEngine) -> None:
    store = engine.store
    digest = store.put_bytes(DATA)
    built = store.scratch_path(".rows")
    built.write_bytes(b"a row index")
    assert not store.has_rows(digest)
    store.commit_rows(digest, built)
    assert store.has_rows(digest) and store.rows_path(digest).read_bytes() == b"a row index"
    other = engine.replica()
    assert other.has_rows(digest) and other.rows_path(digest).read_bytes() == b"a row index"
    store.discard_rows(digest)  # damaged: rebuilt from the file when needed
    assert not engine.replica().has_rows(digest)
    assert list(store.digests()) == [digest]  # a row index is not an artifact


def test_a_large_file_goes_up_and_down_in_flat_memory(engine: StoreEngine) -> None:
    """64 MiB through the store with at most 24 MiB of Python memory at any moment (S3: 8 MiB
    parts, two at a time, and 1 MiB reads); bench/bench_artifacts.py does a gigabyte."""
    size, block = 64 << 20, os.urandom(1 << 20)
    hasher = hashlib.sha256()

    class Source(io.RawIOBase):
        sent = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
            if self.sent >= size:
                return 0
            n = min(len(buffer), len(block), size - self.sent)
            buffer[:n] = block[:n]
            hasher.update(block[:n])
            self.sent += n
            return n

    tracemalloc.start()
    try:
        digest, stored = engine.store.put_stream(io.BufferedReader(Source(), 1 << 20))
        path = engine.replica().verified_path(digest)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (digest, stored, path.stat().st_size) == ("0x" + hasher.hexdigest(), size, size)
    assert peak < 24 << 20, f"peak {peak / 2**20:.1f} MiB"


def test_the_object_store_away_is_a_clear_error_that_keeps_nothing(tmp_path, monkeypatch):
    """An S3 store whose endpoint does not answer: every operation raises
    ArtifactStoreUnavailable within its timeout, and the failed write leaves no file behind."""
    from ledger.storage.s3 import ArtifactStoreUnavailable, S3ArtifactStore

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    store = S3ArtifactStore(tmp_path / "cache", "s3://nowhere/prefix", timeout=1.0)
    with pytest.raises(ArtifactStoreUnavailable, match="object store"):
        store.put_bytes(DATA)
    staged = store.stage(io.BytesIO(DATA))
    with pytest.raises(ArtifactStoreUnavailable):
        store.commit(staged)
    assert os.listdir(tmp_path / "cache" / "tmp") == []
    assert list((tmp_path / "cache" / "sha256").iterdir()) == []
    with pytest.raises(ArtifactStoreUnavailable):
        store.read_bytes(DIGEST)
    with pytest.raises(ArtifactStoreUnavailable):
        _ = DIGEST in store


def test_an_upload_the_object_store_refuses_keeps_nothing(tmp_path, seaweed, bucket) -> None:
    """The endpoint answers but refuses the upload itself (signed with a wrong secret, while
    the existence check is signed right): boto3's own upload error, not a botocore one, is
    ArtifactStoreUnavailable too, and nothing is left behind."""
    import boto3

    from ledger.storage.s3 import ArtifactStoreUnavailable, S3ArtifactStore

    good = seaweed.client()
    forged = boto3.client(
        "s3",
        endpoint_url=seaweed.endpoint,
        aws_access_key_id=seaweed.env()["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key="wrong",
        region_name="us-east-1",
    )

    class Client:  # checks with the right key, uploads with the wrong one
        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(forged if name == "upload_file" else good, name)

    store = S3ArtifactStore(tmp_path / "cache", f"s3://{bucket}/refused", client=Client())
    with pytest.raises(ArtifactStoreUnavailable, match="object store"):
        store.put_bytes(DATA)
    staged = store.stage(io.BytesIO(DATA))
    with pytest.raises(ArtifactStoreUnavailable):
        store.commit(staged)
    assert os.listdir(tmp_path / "cache" / "tmp") == []
    assert DIGEST not in store

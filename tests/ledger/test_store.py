"""The artifact store names files by content and re-checks them on every read."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
import subprocess

import pytest

from ledger.storage.artifacts import (
    ArtifactCorrupted,
    ArtifactMissing,
    ArtifactStore,
    InsufficientStorage,
)


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(tmp_path / "artifacts")


def test_put_bytes_names_the_file_by_its_sha256(store):
    digest = store.put_bytes(b"x1,x2,y\n100,200,5000\n")
    assert digest == "0x" + hashlib.sha256(b"x1,x2,y\n100,200,5000\n").hexdigest()
    out = subprocess.run(
        ["sha256sum", str(store.path_of(digest))], capture_output=True, text=True, check=True
    )
    assert "0x" + out.stdout.split()[0] == digest
    assert store.read_bytes(digest) == b"x1,x2,y\n100,200,5000\n"


def test_put_is_idempotent(store):
    assert store.put_bytes(b"same") == store.put_bytes(b"same")
    assert len(list(store.digests())) == 1


def test_put_stream_hashes_while_copying(store):
    data = bytes(range(256)) * 20_000
    digest, size = store.put_stream(io.BytesIO(data))
    assert (digest, size) == ("0x" + hashlib.sha256(data).hexdigest(), len(data))
    assert store.verified_path(digest).read_bytes() == data


def test_put_stream_over_the_limit_keeps_nothing(store):
    with pytest.raises(ValueError, match="exceeds 10 bytes"):
        store.put_stream(io.BytesIO(b"x" * 11), max_bytes=10)
    assert list(store.digests()) == []
    assert list((store.root / "tmp").iterdir()) == []


def test_altered_file_is_caught_on_every_read(store):
    digest = store.put_bytes(b"original")
    store.path_of(digest).write_bytes(b"tampered")
    with pytest.raises(ArtifactCorrupted) as caught:
        store.read_bytes(digest)
    assert caught.value.expected == digest
    assert caught.value.found == "0x" + hashlib.sha256(b"tampered").hexdigest()
    with pytest.raises(ArtifactCorrupted):
        store.verified_path(digest)
    assert [m.expected for m in store.check_all()] == [digest]


def test_missing_file(store):
    digest = store.put_bytes(b"gone")
    store.path_of(digest).unlink()
    with pytest.raises(ArtifactMissing):
        store.read_bytes(digest)
    with pytest.raises(ArtifactMissing):
        store.verified_path("0x" + "ab" * 32)


def test_bad_digest_is_refused(store):
    with pytest.raises(ValueError, match="64 hex"):
        store.read_bytes("../../etc/passwd")


# --------------------------------------------------------------------------- a full disk, row files


class _FullDisk(io.RawIOBase):
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, real, room):
        self._real, self._room = real, room

    def writable(self):
        return True

    def write(self, data):
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return self._real.write(data)

    def fileno(self):
        return self._real.fileno()

    def flush(self):
        if not self._real.closed:
            self._real.flush()

    def close(self):
        self._real.close()
        super().close()


@pytest.fixture
def full_disk(monkeypatch):
    real_fdopen = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):
        return _FullDisk(real_fdopen(fd, mode, *args, **kwargs), room=3 << 20)

    monkeypatch.setattr("ledger.storage.artifacts.os.fdopen", fdopen)


def test_a_full_disk_refuses_the_upload_and_keeps_nothing(store, full_disk):
    with pytest.raises(InsufficientStorage) as caught:
        store.stage(io.BytesIO(b"x" * (5 << 20)))
    assert isinstance(caught.value, OSError)  # and a LedgerError, for the problem table
    assert list(store.digests()) == [] and list((store.root / "tmp").iterdir()) == []
    with pytest.raises(InsufficientStorage):
        store.put_bytes(b"y" * (4 << 20))
    assert list((store.root / "tmp").iterdir()) == []


def test_a_full_disk_refuses_a_transform_output_and_keeps_nothing(store, full_disk):
    output = store.stage_output()
    output.write(b"a" * (2 << 20))
    with pytest.raises(InsufficientStorage):
        output.write(b"b" * (2 << 20))
    assert list((store.root / "tmp").iterdir()) == []


def test_a_declared_size_larger_than_the_free_space_is_refused_at_once(store):
    free = shutil.disk_usage(store.root).free
    with pytest.raises(InsufficientStorage) as caught:
        store.stage(io.BytesIO(b"never read"), expected_size=free + (1 << 40))
    assert caught.value.free is not None and caught.value.needed == free + (1 << 40)
    assert list((store.root / "tmp").iterdir()) == []
    store.check_space(1)


def test_a_staged_output_is_hashed_as_it_is_written(store):
    with store.stage_output() as output:
        output.write(b"a,b\n")
        output.write(b"1,2\n")
        staged = output.finish()
    assert staged.digest == "0x" + hashlib.sha256(b"a,b\n1,2\n").hexdigest() and staged.size == 8
    assert store.commit(staged) == staged.digest
    assert store.read_bytes(staged.digest) == b"a,b\n1,2\n"


def test_row_files_live_beside_the_artifacts_and_are_not_artifacts(store):
    digest = store.put_bytes(b"a\n1\n")
    built = store.scratch_path(".rows")
    built.write_bytes(b"index")
    assert not store.has_rows(digest)
    target = store.commit_rows(digest, built)
    assert target == store.rows_path(digest) and target.read_bytes() == b"index"
    assert store.has_rows(digest) and not built.exists()
    assert list(store.digests()) == [digest] and store.check_all() == []
    store.discard_rows(digest)
    assert not store.has_rows(digest)

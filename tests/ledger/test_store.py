"""The artifact store names files by content and re-checks them on every read."""

from __future__ import annotations

import hashlib
import io
import subprocess

import pytest

from ledger.store import ArtifactCorrupted, ArtifactMissing, ArtifactStore


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

"""The artifact store: content-addressed files under the data directory.

A file's name is its SHA-256, and every read re-hashes it, so a file altered or swapped on disk
is caught at the moment it is used, never trusted. Writes go to a temporary file, are synced
and then renamed into place: a crash leaves the old state or the new, never a torn file.

Beside a dataset's file the store keeps its row index (:mod:`ledger.storage.row_index`) under
``rows/<2 hex>/<62 hex>``: derived data, rebuilt from the file whenever it is missing, and
self-checking (a proof from it is checked against the root before it is used). A disk without
room for a write raises :class:`InsufficientStorage` with nothing left behind.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ledger.errors import LedgerError
from ledger.records import hash_hex

__all__ = [
    "ArtifactCorrupted",
    "ArtifactMissing",
    "ArtifactStore",
    "InsufficientStorage",
    "Staged",
    "StagingFile",
    "StoreMismatch",
    "StreamTooLarge",
]

_CHUNK = 1 << 20
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class ArtifactMissing(LedgerError, LookupError):
    """No file with this hash is in the store."""


class StreamTooLarge(LedgerError, ValueError):
    """A stream ran past the ``max_bytes`` it was staged under; nothing is kept.

    Its own type, so that a caller turns exactly this into "too large" and lets any other
    ``ValueError`` of reading the stream (a closed file, say) be what it is."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"stream exceeds {max_bytes} bytes", max_bytes=max_bytes)
        self.max_bytes = max_bytes


class ArtifactCorrupted(LedgerError):
    """The stored file no longer hashes to its name: it was altered on disk."""

    hint = "restore the file from a backup or re-upload the original"

    def __init__(self, expected: str, found: str, path: Path) -> None:
        super().__init__(
            f"artifact {path} should hash to {expected} but hashes to {found}",
            expected=expected,
            found=found,
            path=str(path),
        )
        self.expected, self.found, self.path = expected, found, path


class InsufficientStorage(LedgerError, OSError):
    """The disk under the store has no room for a file being written; nothing is kept."""

    hint = "free disk space under the data directory, or move it to a larger disk"

    def __init__(self, message: str, *, needed: int | None = None, free: int | None = None) -> None:
        super().__init__(message, needed=needed, free=free)
        self.needed, self.free = needed, free


def _no_space(exc: OSError) -> bool:
    return exc.errno in _NO_SPACE


@dataclass(frozen=True)
class Staged:
    """A file copied into the store's scratch area, hashed, not yet committed."""

    path: Path
    digest: str
    size: int


@dataclass(frozen=True)
class StoreMismatch:
    """One finding of :meth:`ArtifactStore.check_all`."""

    path: str
    expected: str
    found: str


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return "0x" + hashlib.file_digest(f, "sha256").hexdigest()


class ArtifactStore:
    """Files named by their SHA-256 under ``root/sha256/<2 hex>/<62 hex>``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(exist_ok=True)

    def path_of(self, digest: str) -> Path:
        hexdigest = hash_hex(digest)[2:]
        return self.root / "sha256" / hexdigest[:2] / hexdigest[2:]

    def __contains__(self, digest: str) -> bool:
        return self.path_of(digest).exists()

    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; returns its 0x SHA-256. Storing the same bytes twice is a no-op."""
        digest = "0x" + hashlib.sha256(data).hexdigest()
        if digest not in self:
            self._commit(self._write_temp([data]), digest)
        return digest

    def put_stream(self, stream: BinaryIO, *, max_bytes: int | None = None) -> tuple[str, int]:
        """Store a stream, hashing as it is copied; returns (digest, size).

        Raises :class:`StreamTooLarge` (nothing kept) when ``max_bytes`` is exceeded.
        """
        staged = self.stage(stream, max_bytes=max_bytes)
        self.commit(staged)
        return staged.digest, staged.size

    def stage(
        self, stream: BinaryIO, *, max_bytes: int | None = None, expected_size: int | None = None
    ) -> Staged:
        """Copy a stream to a temporary file, hashing it, without adding it to the store yet.

        The caller validates the staged file, then :meth:`commit` s or :meth:`discard` s it,
        so bad input never lands in the store. Raises :class:`StreamTooLarge` past ``max_bytes``,
        and :class:`InsufficientStorage` (nothing kept) when the disk fills up, or at once when
        ``expected_size`` (a declared length) does not fit in the free space.
        """
        if expected_size is not None:
            self.check_space(expected_size)
        hasher = hashlib.sha256()
        size = 0

        def chunks() -> Iterator[bytes]:
            nonlocal size
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise StreamTooLarge(max_bytes)
                hasher.update(chunk)
                yield chunk

        tmp = self._write_temp(chunks())
        return Staged(tmp, "0x" + hasher.hexdigest(), size)

    def stage_output(self) -> StagingFile:
        """A file to write into (a transform's output), hashed as it is written; its
        :meth:`StagingFile.finish` gives the :class:`Staged` file to commit or discard."""
        fd, name = tempfile.mkstemp(dir=self.root / "tmp", prefix="output-")
        return StagingFile(Path(name), os.fdopen(fd, "wb"))

    def scratch_path(self, suffix: str = "") -> Path:
        """A fresh path in the store's scratch area (not created), on the store's disk."""
        fd, name = tempfile.mkstemp(dir=self.root / "tmp", prefix="scratch-", suffix=suffix)
        os.close(fd)
        return Path(name)

    def check_space(self, needed: int) -> None:
        """Raise :class:`InsufficientStorage` unless ``needed`` bytes fit on the store's disk."""
        free = shutil.disk_usage(self.root / "tmp").free
        if needed > free:
            raise InsufficientStorage(
                f"the store's disk has {free:,} bytes free, {needed:,} are needed",
                needed=needed,
                free=free,
            )

    # -- row indexes ---------------------------------------------------------------------------

    def rows_path(self, digest: str) -> Path:
        """Where the row index of the dataset ``digest`` lives (it may not exist)."""
        hexdigest = hash_hex(digest)[2:]
        return self.root / "rows" / hexdigest[:2] / hexdigest[2:]

    def has_rows(self, digest: str) -> bool:
        return self.rows_path(digest).exists()

    def commit_rows(self, digest: str, built: Path) -> Path:
        """Move a built row index (synced by its builder) into place for ``digest``."""
        target = self.rows_path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(built, target)
        _fsync_dir(target.parent)
        return target

    def discard_rows(self, digest: str) -> None:
        """Remove a dataset's row index (it is rebuilt from the dataset file when needed)."""
        self.rows_path(digest).unlink(missing_ok=True)

    def commit(self, staged: Staged) -> str:
        """Move a staged file into the store under its digest (a no-op if already there)."""
        if staged.digest in self:
            staged.path.unlink(missing_ok=True)
        else:
            self._commit(staged.path, staged.digest)
        return staged.digest

    @staticmethod
    def discard(staged: Staged) -> None:
        staged.path.unlink(missing_ok=True)

    def verified_path(self, digest: str) -> Path:
        """The file's path after re-hashing it; raises if missing or altered."""
        path = self.path_of(digest)
        if not path.exists():
            raise ArtifactMissing(f"no artifact {hash_hex(digest)} in the store", path=str(path))
        found = _file_sha256(path)
        if found != hash_hex(digest):
            raise ArtifactCorrupted(hash_hex(digest), found, path)
        return path

    def read_bytes(self, digest: str) -> bytes:
        """The file's bytes, checked against ``digest`` after reading."""
        path = self.path_of(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactMissing(
                f"no artifact {hash_hex(digest)} in the store", path=str(path)
            ) from None
        found = "0x" + hashlib.sha256(data).hexdigest()
        if found != hash_hex(digest):
            raise ArtifactCorrupted(hash_hex(digest), found, path)
        return data

    def digests(self) -> Iterator[str]:
        """Every digest the store holds a file for (by name; contents unchecked)."""
        for shard in sorted((self.root / "sha256").iterdir()):
            for file in sorted(shard.iterdir()):
                yield "0x" + shard.name + file.name

    def check_all(self) -> list[StoreMismatch]:
        """Re-hash every file; one finding per file whose contents do not match its name."""
        findings = []
        for digest in self.digests():
            found = _file_sha256(self.path_of(digest))
            if found != digest:
                findings.append(StoreMismatch(str(self.path_of(digest)), digest, found))
        return findings

    def _write_temp(self, chunks: Iterator[bytes] | list[bytes]) -> Path:
        fd, name = tempfile.mkstemp(dir=self.root / "tmp", prefix="incoming-")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if _no_space(exc):
                raise InsufficientStorage(
                    "no space left on the store's disk for the file"
                ) from None
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def _commit(self, tmp: Path, digest: str) -> None:
        target = self.path_of(digest)
        target.parent.mkdir(exist_ok=True)
        os.replace(tmp, target)
        _fsync_dir(target.parent)


def _fsync_dir(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class StagingFile:
    """A temporary file in the store, hashed as it is written (see
    :meth:`ArtifactStore.stage_output`). ``write`` raises :class:`InsufficientStorage` when the
    disk fills up; :meth:`discard` removes the file."""

    def __init__(self, path: Path, handle: BinaryIO) -> None:
        self.path = path
        self._handle = handle
        self._hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        try:
            self._handle.write(data)
        except OSError as exc:
            self.discard()
            if _no_space(exc):
                raise InsufficientStorage(
                    "no space left on the store's disk for the file"
                ) from None
            raise
        self._hasher.update(data)
        self.size += len(data)
        return len(data)

    def finish(self) -> Staged:
        """Flush and sync; the staged file, ready to commit."""
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
        except OSError as exc:
            self.discard()
            if _no_space(exc):
                raise InsufficientStorage(
                    "no space left on the store's disk for the file"
                ) from None
            raise
        return Staged(self.path, "0x" + self._hasher.hexdigest(), self.size)

    def discard(self) -> None:
        if not self._handle.closed:
            self._handle.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> StagingFile:
        return self

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if kind is not None:
            self.discard()

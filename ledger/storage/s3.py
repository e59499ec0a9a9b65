"""The artifact store in an S3-compatible object store, shared by every replica of the service.

``PROVENANCE_ARTIFACTS_URL=s3://BUCKET/PREFIX`` puts each artifact under
``PREFIX/sha256/<2 hex>/<62 hex>`` and each dataset's row index under ``PREFIX/rows/...``, the
folder store's layout; the endpoint and credentials come from the standard variables
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``), read by
boto3 itself.

:class:`S3ArtifactStore` is an :class:`~ledger.storage.artifacts.ArtifactStore` whose folder is
the replica's scratch space and cache: uploads are staged and hashed there as before, then
streamed to the object store (multipart, a few MiB at a time: a gigabyte file in flat memory),
and only then kept in the local cache. A read fetches a file missing from the cache by streaming
it down while hashing it, and refuses it (:class:`ArtifactCorrupted`) unless it hashes to its
name; a cached file is re-hashed on every read as the folder store's are. An object appears in
S3 whole or not at all (a failed multipart upload is aborted), and a file is stored before any
transaction names it, so an object store that goes away mid-request leaves no half-written
record: at most a complete, content-addressed file that nothing references yet.

Every way the object store can be away (refused, timed out, 5xx, bad credentials, no bucket)
raises :class:`ArtifactStoreUnavailable`, answered 503 ``artifact-store-unavailable``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ledger.errors import LedgerError
from ledger.records import hash_hex
from ledger.storage.artifacts import (
    _CHUNK,
    ArtifactCorrupted,
    ArtifactMissing,
    ArtifactStore,
    Staged,
    StoreMismatch,
    _fsync_dir,
)

__all__ = ["ArtifactStoreUnavailable", "S3ArtifactStore", "is_s3_url", "parse_s3_url"]

_PART = 8 << 20  # bytes of one multipart upload part
_NOT_FOUND = ("404", "NoSuchKey", "NotFound")
ARTIFACTS_RETRY_AFTER = 5  # seconds a client is told to wait while the object store is away


class ArtifactStoreUnavailable(LedgerError):
    """The object store could not be reached or refused the request (down, timed out, a 5xx,
    credentials or bucket wrong); nothing was stored."""

    hint = "retry shortly; if it lasts, check the object store, the bucket and the credentials"
    retry_after = ARTIFACTS_RETRY_AFTER


def is_s3_url(url: str | None) -> bool:
    """Whether ``url`` names an S3 bucket (``s3://BUCKET/PREFIX``)."""
    return bool(url) and urlsplit(url).scheme == "s3"  # type: ignore[arg-type]


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET/PREFIX`` → (bucket, prefix without slashes at either end)."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"an artifacts URL is s3://BUCKET/PREFIX, got {url!r}")
    return parts.netloc, parts.path.strip("/")


class S3ArtifactStore(ArtifactStore):
    """Files named by their SHA-256 in a bucket, cached under ``root`` (see the module)."""

    def __init__(self, root: Path, url: str, *, timeout: float = 10.0, client: Any = None) -> None:
        super().__init__(root)
        self.url = url
        self.bucket, self.prefix = parse_s3_url(url)
        self._s3 = client if client is not None else _client(timeout)

    # -- names --------------------------------------------------------------------------------

    def _key(self, area: str, digest: str) -> str:
        hexdigest = hash_hex(digest)[2:]
        name = f"{area}/{hexdigest[:2]}/{hexdigest[2:]}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _cached(self, digest: str) -> Path:
        return ArtifactStore.path_of(self, digest)

    # -- the interface ------------------------------------------------------------------------

    def path_of(self, digest: str) -> Path:
        """The local copy of the file, fetched (and checked) first when the cache lacks it; a
        path that does not exist when the object store has no such file either."""
        path = self._cached(digest)
        if not path.exists():
            with suppress(ArtifactMissing):
                self._download(self._key("sha256", digest), digest, path)
        return path

    def __contains__(self, digest: str) -> bool:
        return self._cached(digest).exists() or self._exists(self._key("sha256", digest))

    def verified_path(self, digest: str) -> Path:
        """The local copy after checking it: fetched and hashed on the way down when the cache
        lacks it, else re-hashed; raises if the object store lacks it or it was altered."""
        path = self._cached(digest)
        if path.exists():
            return super().verified_path(digest)
        self._download(self._key("sha256", digest), digest, path)
        return path

    def read_bytes(self, digest: str) -> bytes:
        """The file's bytes, checked against ``digest``."""
        if not self._cached(digest).exists():
            self.verified_path(digest)
        return super().read_bytes(digest)

    def digests(self) -> Iterator[str]:
        """Every digest the bucket holds a file for under the prefix (by name, unchecked)."""
        area = f"{self.prefix}/sha256/" if self.prefix else "sha256/"
        with self._guard(self._where(area)):
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=area
            )
            for page in pages:
                for item in page.get("Contents", []):
                    shard, _, name = item["Key"][len(area) :].partition("/")
                    yield "0x" + shard + name

    def check_all(self) -> list[StoreMismatch]:
        """Re-hash every object in the bucket (streamed, not cached)."""
        findings = []
        for digest in self.digests():
            key = self._key("sha256", digest)
            found = self._hash_object(key)
            if found != digest:
                findings.append(StoreMismatch(self._where(key), digest, found))
        return findings

    # -- row indexes --------------------------------------------------------------------------

    def has_rows(self, digest: str) -> bool:
        """Whether the dataset has a row index here or in the bucket (then fetched: a row
        index checks itself against the chain's rows root when used)."""
        path = self.rows_path(digest)
        if path.exists():
            return True
        try:
            self._download(self._key("rows", digest), None, path)
        except ArtifactMissing:
            return False
        return True

    def commit_rows(self, digest: str, built: Path) -> Path:
        """Upload a built row index, then move it into the local cache (removed if the upload
        fails: it is rebuilt from the file whenever needed)."""
        try:
            self._upload(built, self._key("rows", digest))
        except BaseException:
            built.unlink(missing_ok=True)
            raise
        return super().commit_rows(digest, built)

    def discard_rows(self, digest: str) -> None:
        """Remove a (damaged) row index here and in the bucket; it is rebuilt from the file."""
        key = self._key("rows", digest)
        with self._guard(self._where(key)):
            self._s3.delete_object(Bucket=self.bucket, Key=key)
        super().discard_rows(digest)

    def commit(self, staged: Staged) -> str:
        """Upload a staged file (unless the bucket has it already); on any failure the staged
        file is removed, so a refused or failed write leaves nothing behind."""
        try:
            return super().commit(staged)
        except BaseException:
            self.discard(staged)
            raise

    # -- transfers ----------------------------------------------------------------------------

    def _commit(self, tmp: Path, digest: str) -> None:
        """Upload the staged file, then keep it in the cache; on failure nothing is kept."""
        try:
            self._upload(tmp, self._key("sha256", digest))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        target = self._cached(digest)
        target.parent.mkdir(exist_ok=True)
        os.replace(tmp, target)
        _fsync_dir(target.parent)

    def _upload(self, path: Path, key: str) -> None:
        with self._guard(self._where(key)):
            self._s3.upload_file(str(path), self.bucket, key, Config=_transfer_config())

    def _exists(self, key: str) -> bool:
        try:
            with self._guard(self._where(key)):
                self._s3.head_object(Bucket=self.bucket, Key=key)
        except ArtifactMissing:
            return False
        return True

    def _chunks(self, key: str) -> Iterator[bytes]:
        with self._guard(self._where(key)):
            body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                while chunk := body.read(_CHUNK):
                    yield chunk
            finally:
                body.close()

    def _hash_object(self, key: str) -> str:
        hasher = hashlib.sha256()
        for chunk in self._chunks(key):
            hasher.update(chunk)
        return "0x" + hasher.hexdigest()

    def _download(self, key: str, digest: str | None, target: Path) -> None:
        """Stream an object into ``target`` (through a temporary file); with ``digest``, refuse
        it unless it hashes to that. Raises :class:`ArtifactMissing` if there is no object."""
        fd, name = tempfile.mkstemp(dir=self.root / "tmp", prefix="download-")
        tmp = Path(name)
        hasher = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in self._chunks(key):
                    hasher.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            found = "0x" + hasher.hexdigest()
            if digest is not None and found != hash_hex(digest):
                raise ArtifactCorrupted(hash_hex(digest), found, self._where(key))  # type: ignore[arg-type]
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @contextmanager
    def _guard(self, where: str) -> Iterator[None]:
        """botocore's failures as ours: a missing object, or the object store away."""
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if str(error.get("Code")) in _NOT_FOUND:
                raise ArtifactMissing(f"no artifact at {where}", path=where) from None
            refusal = f"{error.get('Code')} {error.get('Message', '')}".strip()
            raise ArtifactStoreUnavailable(
                f"the object store refused {where}: {refusal}", path=where
            ) from exc
        except (BotoCoreError, Boto3Error) as exc:  # boto3's: a failed (multipart) upload
            raise ArtifactStoreUnavailable(
                f"the object store is unavailable ({where}): {exc}", path=where
            ) from exc


def _transfer_config() -> Any:
    """Multipart uploads of 8 MiB parts, two at a time: a file of any size costs about 16 MiB
    of memory on its way up (boto3's default is ten parts at once)."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=_PART, multipart_chunksize=_PART, max_concurrency=2, use_threads=True
    )


def _client(timeout: float) -> Any:
    """An S3 client configured by the standard AWS variables, with bounded waits: a store that
    is away answers the request 503 within seconds rather than after botocore's retries."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"max_attempts": 2, "mode": "standard"},
        s3={"addressing_style": "path"},
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return boto3.client("s3", region_name=region, config=config)

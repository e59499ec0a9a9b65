"""The engines every storage conformance test runs on, in the manner of web3.py's module tests
run against each provider: a test takes ``engine`` and runs once on the zero-configuration
default (a folder) and once on the shared engine (a SeaweedFS bucket through S3), both real
(``tests/_engines.py``). The event index's conformance tests are ``tests/ledger/test_index.py``,
whose ``index`` fixture does the same for SQLite and PostgreSQL.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger.storage.artifacts import ArtifactStore
from tests._servers import Seaweed

STORE_ENGINES = ["folder", "s3"]


@dataclass
class StoreEngine:
    """One engine's store, and what a test needs to play the other replicas and the attacker."""

    name: str
    store: ArtifactStore
    tmp: Path
    seaweed: Seaweed | None = None
    url: str | None = None

    def replica(self) -> ArtifactStore:
        """The same storage as another replica opens it (for S3: an empty cache of its own)."""
        if self.seaweed is None:
            return ArtifactStore(self.store.root)
        from ledger.storage.s3 import S3ArtifactStore

        cache = self.tmp / f"replica-{secrets.token_hex(3)}"
        return S3ArtifactStore(cache, self.url, client=self.seaweed.client())

    def tamper(self, digest: str, data: bytes) -> None:
        """Replace the stored bytes behind ``digest`` where the engine keeps them."""
        if self.seaweed is None:
            path = self.store.path_of(digest)
            path.chmod(0o644)
            path.write_bytes(data)
            return
        bucket, key = self.store.bucket, self.store._key("sha256", digest)  # type: ignore[attr-defined]
        self.seaweed.client().put_object(Bucket=bucket, Key=key, Body=data)


@pytest.fixture(params=STORE_ENGINES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> StoreEngine:
    """An empty artifact store: a folder, or a fresh prefix of a SeaweedFS bucket (with its
    own local cache)."""
    if request.param == "folder":
        return StoreEngine("folder", ArtifactStore(tmp_path / "artifacts"), tmp_path)
    from ledger.storage.s3 import S3ArtifactStore

    seaweed: Seaweed = request.getfixturevalue("seaweed")
    url = f"s3://{request.getfixturevalue('bucket')}/run-{secrets.token_hex(4)}"
    store = S3ArtifactStore(tmp_path / "cache", url, client=seaweed.client())
    return StoreEngine("s3", store, tmp_path, seaweed, url)

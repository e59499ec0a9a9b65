"""The shared engines' fixtures (PostgreSQL, SeaweedFS), loaded for every test package by
``tests/conftest.py``'s ``pytest_plugins``: the index conformance tests in ``tests/ledger`` and
the store tests in ``tests/storage`` use the same session servers.

The servers are per session (one scratch database, migrated by ``provenance db upgrade``'s own
code, and one SeaweedFS); a test asking for ``empty_pg`` gets empty tables (TRUNCATE).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.storage.postgres import PgConnections
from ledger.storage.schema import upgrade
from tests._servers import Seaweed, postgres_available, scratch_database, seaweed_server

SHARED_TABLES = (
    "meta, records, datasets, models, batches, inputs, revocations, registrar_roles, blocks, "
    "api_keys, deployment, jobs, write_queue, sender, tx_sent, tx_marks, "
    "receipts, receipt_batches, receipt_models"
)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A scratch database with the schema at its head, for the whole session."""
    if not postgres_available():
        pytest.fail("PostgreSQL is not running at 127.0.0.1:5432 (the python-svc machines run it)")
    with scratch_database() as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def pg(pg_url: str) -> Iterator[PgConnections]:
    db = PgConnections(pg_url, max_size=4)
    yield db
    db.close()


@pytest.fixture
def empty_pg(pg: PgConnections) -> PgConnections:
    """The session's database with every shared table emptied."""
    with pg.write() as conn:
        conn.execute(f"TRUNCATE {SHARED_TABLES}")
    return pg


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    with seaweed_server(tmp_path_factory.mktemp("seaweed")) as server:
        yield server


@pytest.fixture(scope="session")
def bucket(seaweed: Seaweed) -> str:
    return seaweed.create_bucket()

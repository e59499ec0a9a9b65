"""The shared schema's migrations: a database of the previous revision is migrated in place,
keeping its rows; a service's check names what it found."""

from __future__ import annotations

import psycopg
import pytest

from ledger.storage.postgres import PgConnections
from ledger.storage.schema import SchemaMismatch, check_schema, head, upgrade
from tests._servers import scratch_database


def test_a_database_of_the_previous_revision_is_migrated_keeping_its_rows() -> None:
    with scratch_database() as url:
        assert upgrade(url, "r0001") == (None, "r0001")
        with psycopg.connect(url) as conn:
            conn.execute("INSERT INTO deployment (id, record) VALUES (1, '{}')")
        db = PgConnections(url, max_size=1)
        try:
            with pytest.raises(SchemaMismatch) as refused:
                check_schema(db)
            assert (refused.value.found, refused.value.expected) == ("r0001", head())
            assert upgrade(url) == ("r0001", head())
            assert check_schema(db) == head()
            assert upgrade(url) == (head(), head())  # again: nothing to do
        finally:
            db.close()
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT record FROM deployment").fetchall() == [("{}",)]
            assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)

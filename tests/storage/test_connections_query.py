"""``query``, one read-only statement's rows, on each engine's connections (SQLite's file,
PostgreSQL's pool), written once: rows by column name, and inside a ``read`` the read's
snapshot, not a newer one (on PostgreSQL it otherwise runs outside any transaction)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.storage._sqlite import Connections


@pytest.fixture(params=["sqlite", "postgres"])
def two_handles(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """Two handles on one database (two replicas), with an empty table ``t``."""
    if request.param == "sqlite":
        one, other = Connections(tmp_path / "q.sqlite3"), Connections(tmp_path / "q.sqlite3")
        one.get().execute("PRAGMA journal_mode = WAL")  # as the index's file is
    else:
        from ledger.storage.postgres import PgConnections

        url = request.getfixturevalue("pg_url")
        one, other = PgConnections(url, max_size=2), PgConnections(url, max_size=2)
    with one.write() as conn:
        conn.execute("DROP TABLE IF EXISTS query_probe")
        conn.execute("CREATE TABLE query_probe (k TEXT PRIMARY KEY, v INTEGER)")
    yield one, other
    with one.write() as conn:
        conn.execute("DROP TABLE query_probe")
    one.close()
    other.close()


def test_query_answers_rows_by_name_and_sees_every_commit(two_handles) -> None:
    one, other = two_handles
    assert one.query("SELECT k, v FROM query_probe WHERE k = ?", ("a",)) == []
    with other.write() as conn:
        conn.execute("INSERT INTO query_probe (k, v) VALUES (?, ?)", ("a", 1))
    rows = one.query("SELECT k, v FROM query_probe WHERE k = ?", ("a",))
    assert [(row["k"], row["v"]) for row in rows] == [("a", 1)]


def test_query_inside_a_read_keeps_the_reads_snapshot(two_handles) -> None:
    one, other = two_handles
    with one.read() as conn:
        assert conn.execute("SELECT count(*) AS n FROM query_probe").fetchone()["n"] == 0
        with other.write() as writing:  # another replica commits meanwhile
            writing.execute("INSERT INTO query_probe (k, v) VALUES (?, ?)", ("b", 2))
        assert one.query("SELECT k FROM query_probe") == []
    assert [row["k"] for row in one.query("SELECT k FROM query_probe")] == ["b"]


def test_write_if_applies_its_statements_only_where_its_condition_holds(two_handles) -> None:
    one, other = two_handles
    holds = ("SELECT count(*) = 0 FROM query_probe WHERE k = ?", ("stop",))
    insert = "INSERT INTO query_probe (k, v) VALUES (?, ?)"

    def kept() -> list[tuple[str, int]]:
        return [(r["k"], r["v"]) for r in other.query("SELECT k, v FROM query_probe ORDER BY k")]

    assert one.write_if(holds, [(insert, ("a", 1)), (insert, ("b", 2))], lock=4242) is True
    assert kept() == [("a", 1), ("b", 2)]
    with other.write() as conn:  # another replica makes the condition false
        conn.execute(insert, ("stop", 0))
    assert one.write_if(holds, [(insert, ("c", 3))]) is False
    assert kept() == [("a", 1), ("b", 2), ("stop", 0)]  # nothing of it
    with other.write() as conn:
        conn.execute("DELETE FROM query_probe WHERE k = ?", ("stop",))
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):  # a statement's own error
        one.write_if(holds, [(insert, ("c", 3)), (insert, ("a", 9))])
    assert kept() == [("a", 1), ("b", 2)]  # raised, and nothing of it either

"""The SQLite index's change token (what the service keys its kept liveness of a model by):
equal while nothing commits to the file, different after any commit, from this thread, another
thread of this process, or another process (``provenance index rebuild`` while a service runs)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from ledger.index._sql import SqlIndex
from ledger.index.postgres import PostgresIndex
from ledger.index.sqlite import LedgerIndex


def _commit_on_this_thread(index: LedgerIndex) -> None:
    with index._connections.write() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS scratch (x)")
        conn.execute("INSERT INTO scratch VALUES (1)")


def test_the_token_holds_while_nothing_commits(tmp_path: Path) -> None:
    with LedgerIndex(tmp_path / "index.sqlite3") as index:
        first = index.change_token()
        assert index.last_block is None  # a read is no change
        assert index.change_token() == first


def test_a_commit_from_this_thread_or_another_changes_it(tmp_path: Path) -> None:
    with LedgerIndex(tmp_path / "index.sqlite3") as index:
        before = index.change_token()
        _commit_on_this_thread(index)
        after_own = index.change_token()
        assert after_own != before
        other = threading.Thread(target=_commit_on_this_thread, args=(index,))
        other.start()
        other.join()
        assert index.change_token() != after_own


def test_a_commit_by_another_process_changes_it(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    with LedgerIndex(path) as index:
        before = index.change_token()
        script = (
            "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
            "db.execute('CREATE TABLE scratch (x)'); db.commit()"
        )
        subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)
        assert index.change_token() != before


def test_an_index_other_replicas_write_gives_no_token() -> None:
    """PostgreSQL: other replicas commit to it, so no cheap token: None, and nothing is kept."""
    assert "change_token" not in vars(PostgresIndex)
    assert SqlIndex.change_token(None) is None  # type: ignore[arg-type]

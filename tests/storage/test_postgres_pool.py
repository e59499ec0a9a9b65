"""The PostgreSQL pool under the shared stores: a session killed on the server
(``pg_terminate_backend``, what a restart does to every session) costs no request once the
server answers, and a server that cannot be reached is ``StoreUnavailable`` within the pool's
timeout, never a hang or a driver exception."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from ledger.index.postgres import PostgresIndex
from ledger.storage.postgres import PgConnections, StoreUnavailable
from tests._proxy import TcpProxy


def test_sessions_killed_on_the_server_cost_no_request(pg_url: str) -> None:
    db = PgConnections(pg_url, max_size=3)
    index = PostgresIndex(db)
    try:
        with db.read(), db.write(), db.write():  # three connections, back in the pool after
            pass
        assert index.datasets(0, 1)[1] >= 0  # the pool has live connections now
        with psycopg.connect(pg_url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()[0]
        assert killed >= 1
        for _ in range(5):  # each checkout finds its connection dead and takes a new one
            assert index.kind_of("0x" + "11" * 32) is None
    finally:
        db.close()


def test_a_write_takes_its_lock_and_its_commit_mode_with_its_begin(pg_url: str) -> None:
    db = PgConnections(pg_url, max_size=2)
    try:
        with db.write(lock=424242, wait_for_flush=False, first="SELECT 41 + 1 AS n") as conn:
            assert conn.opening_rows == [{"n": 42}]
            assert conn.execute("SHOW synchronous_commit").fetchone()["synchronous_commit"] == "off"
            held = conn.execute(
                "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' "
                "AND objid = 424242 AND pid = pg_backend_pid()"
            ).fetchone()["n"]
            assert held == 1
        with db.write() as conn:  # the next transaction on a pooled connection: defaults again
            assert conn.opening_rows == []
            assert conn.execute("SHOW synchronous_commit").fetchone()["synchronous_commit"] == "on"
            held = conn.execute(
                "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = 424242"
            ).fetchone()["n"]
            assert held == 0
    finally:
        db.close()


def test_a_database_that_cannot_be_reached_is_store_unavailable(pg_url: str) -> None:
    proxy = TcpProxy(5432)
    db = PgConnections(pg_url.replace(":5432/", f":{proxy.port}/"), max_size=2, timeout=1.5)
    index = PostgresIndex(db)
    try:
        assert index.last_block is None or index.last_block >= 0
        proxy.stop()
        with pytest.raises(StoreUnavailable, match="is unavailable") as caught:
            index.datasets()
        assert caught.value.retry_after > 0
        proxy.start()
        deadline = time.monotonic() + 30  # back by itself, once the pool has reconnected
        while True:
            try:
                assert index.datasets(0, 1)[1] >= 0
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline, "the pool never reconnected"
                time.sleep(0.2)
    finally:
        proxy.stop()
        db.close()


def test_a_password_never_appears_in_messages() -> None:
    from ledger.storage.postgres import redacted

    assert (
        redacted("postgresql://app:s3cret@db:5432/ledger") == "postgresql://app:***@db:5432/ledger"
    )
    assert redacted("postgresql://app@db/ledger") == "postgresql://app@db/ledger"


def _trace(db: PgConnections, fileno: int | None) -> None:
    """libpq's protocol trace of the pool's one connection into ``fileno``; None stops it."""
    with db._pool.connection() as conn:
        conn.pgconn.trace(fileno) if fileno is not None else conn.pgconn.untrace()


def test_a_script_is_one_query_and_one_transaction(pg_url: str, tmp_path: Any) -> None:
    db = PgConnections(pg_url, max_size=1)
    trace = open(tmp_path / "trace", "w+")  # noqa: SIM115  # closed below
    try:
        db.script(
            [("CREATE TABLE IF NOT EXISTS script_t (id INT PRIMARY KEY, v TEXT, b BYTEA)", ())]
        )
        db.script([("DELETE FROM script_t", ())])
        awkward = ("it's \\ 100% ?", b"\x00'\x01", None)
        _trace(db, trace.fileno())
        first, sets = db.script(
            [
                ("INSERT INTO script_t VALUES (1, ?, ?) RETURNING v, b", awkward[:2]),
                ("SELECT ?::text AS nothing, ?::bigint[] AS ids", (awkward[2], [1, 2**62])),
            ],
            wait_for_flush=False,
            lock=434343,
            notify="script_test",
            first="SELECT 41 + 1 AS n",
        )
        _trace(db, None)
        assert first == [{"n": 42}]
        assert sets == [
            [{"v": awkward[0], "b": awkward[1]}],
            [{"nothing": None, "ids": [1, 2**62]}],
        ]
        trace.seek(0)
        sent = [line for line in trace if "\tF\t" in line]
        assert len(sent) == 1 and "\tQuery\t" in sent[0]  # one message, no Parse/Bind/Execute
        # a statement that fails takes the whole script back, and the connection is fine after
        with pytest.raises(psycopg.errors.UniqueViolation):
            db.script(
                [
                    ("INSERT INTO script_t VALUES (2, 'kept', NULL)", ()),
                    ("INSERT INTO script_t VALUES (1, 'twice', NULL)", ()),
                ]
            )
        assert db.query("SELECT id FROM script_t ORDER BY id") == [{"id": 1}]
        with db.write() as conn:  # defaults again on the pooled connection
            assert conn.execute("SHOW synchronous_commit").fetchone()["synchronous_commit"] == "on"
        db.script([("DROP TABLE script_t", ())])
    finally:
        trace.close()
        db.close()


def test_write_if_is_one_query(pg_url: str, tmp_path: Any) -> None:
    db = PgConnections(pg_url, max_size=1)
    trace = open(tmp_path / "trace", "w+")  # noqa: SIM115  # closed below
    try:
        db.script([("CREATE TABLE IF NOT EXISTS write_if_t (id INT PRIMARY KEY)", ())])
        db.script([("DELETE FROM write_if_t", ())])
        _trace(db, trace.fileno())
        held = db.write_if(
            ("SELECT count(*) = 0 FROM write_if_t", ()),
            [("INSERT INTO write_if_t VALUES (?)", (n,)) for n in (1, 2)],
            lock=4343,
        )
        _trace(db, None)
        trace.seek(0)
        assert held and sum("\tF\t" in line for line in trace) == 1  # one message sent
        db.script([("DROP TABLE write_if_t", ())])
    finally:
        trace.close()
        db.close()

"""PostgreSQL connections for the shared stores (event index, API keys, deployment record):
one bounded pool per process, explicit transactions, rows read by column name.

It answers the same small interface as :class:`ledger.storage._sqlite.Connections`
(``read()``, ``query()``, ``write()``, ``path``, ``close()``), so the index's queries run
unchanged on either engine: they are written with ``?`` placeholders, which
:class:`PgConnection` turns into psycopg's ``%s`` (no query of ours has a ``?`` or ``%`` of its
own).

Why a pool and not one connection per thread as SQLite has: a service runs forty request threads
and several replicas share one server, whose connection slots are few; the pool's size and
wait are settings (``PROVENANCE_DATABASE_POOL_SIZE``, ``..._POOL_TIMEOUT``), as MLflow's are.
A server restarted or a session killed (``pg_terminate_backend``) costs no request a failure
once the server answers again: a pooled connection the server dropped fails at its first
statement, before anything ran, and that statement runs again on a checked one
(:meth:`PgConnections._live`).

Round trips are what a replica pays for (issue 22: a single-client upload made 60, and the
service's CPU for one is ~0.1 ms here), so: a connection is not checked with a round trip of its
own each time it is taken; a transaction's fixed statements (its ``SET LOCAL``, advisory lock,
``NOTIFY`` and ``first`` statement) travel with its ``BEGIN`` in one simple query; a read of one
statement goes without a transaction (:meth:`PgConnections.query`); a transaction whose
statements need nothing from each other's results is one query, ``BEGIN`` to ``COMMIT``
(:meth:`PgConnections.script`). A single client's upload now makes 8.4
(``python -m bench.pg_round_trips``).

Whenever the server cannot be reached (refused, restarted, killed session, pool wait over),
:class:`StoreUnavailable` is raised: the one "retry later" of every PostgreSQL-backed store,
which the service answers 503 ``store-unavailable`` with ``Retry-After``. psycopg is imported
lazily, so a SQLite-only service never loads it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ledger.errors import LedgerError

__all__ = [
    "PgConnection",
    "PgConnections",
    "PgDeploymentRecord",
    "StoreUnavailable",
    "is_postgres_url",
    "redacted",
]

T = TypeVar("T")
_CONDITION_FAILED = "provenance: the condition of this write does not hold"  # see write_if
STORE_RETRY_AFTER = 5  # seconds a client is told to wait while the database is away


class StoreUnavailable(LedgerError):
    """The database could not be reached (down, restarting, or every pooled connection busy
    past the pool's timeout); nothing was written."""

    hint = "retry shortly; if it lasts, check that PostgreSQL is running and reachable"
    retry_after = STORE_RETRY_AFTER


def is_postgres_url(url: str | None) -> bool:
    """Whether ``url`` names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    return bool(url) and urlsplit(url).scheme in ("postgresql", "postgres")  # type: ignore[arg-type]


def redacted(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class PgConnection:
    """One pooled connection inside a transaction, with SQLite's ``?`` placeholders;
    ``opening_rows`` are the rows of the ``first`` statement its transaction was opened with
    (:meth:`PgConnections.write`)."""

    def __init__(self, conn: Any, opening_rows: list[Any] | None = None) -> None:
        self.raw = conn
        self.opening_rows = opening_rows or []

    def execute(self, query: str, params: Sequence[Any] = ()) -> Any:
        """Run ``query`` (``?`` placeholders); the cursor, whose rows are dicts."""
        return self.raw.execute(query.replace("?", "%s"), tuple(params))


class PgConnections:
    """A bounded pool of connections to one PostgreSQL database."""

    def __init__(self, url: str, *, max_size: int = 10, timeout: float = 10.0) -> None:
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        self.url = url
        self._local = threading.local()
        self.path = redacted(url)  # what messages name, as a SQLite store names its file
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            timeout=timeout,
            kwargs={
                "row_factory": dict_row,
                "autocommit": True,
                "connect_timeout": max(1, int(timeout)),
            },
            open=True,
            name="provenance",
        )

    def _live(self, first: Callable[[Any], T]) -> tuple[Any, T]:
        """A pooled connection, and what ``first(connection)`` returned; the caller puts the
        connection back.

        Connections are not checked when taken (a round trip every time): one the server
        dropped while it sat in the pool (a restart, a killed session) breaks at ``first``,
        before anything ran, so every idle connection is then checked (the dead replaced) and
        ``first`` runs once more on another."""
        import psycopg

        for attempt in (1, 2):
            conn = self._pool.getconn()
            try:
                return conn, first(conn)
            except psycopg.OperationalError:
                self._pool.putconn(conn)  # a broken one is discarded
                if attempt == 2 or not conn.broken:
                    raise
                self._pool.check()
            except BaseException:
                self._pool.putconn(conn)
                raise
        raise AssertionError("unreachable")

    @contextmanager
    def _unavailable_raised(self) -> Iterator[None]:
        """The server out of reach (refused, restarted, killed session, pool wait over) as
        :class:`StoreUnavailable`."""
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            yield
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(
                f"the database {self.path} is unavailable: {exc}".strip(), database=self.path
            ) from exc

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[PgConnection]:
        with self._unavailable_raised():
            # autocommit connections: each transaction opened visibly
            conn, opening = self._live(lambda conn: _each_rows(conn.execute(begin))[-1])
            try:
                try:
                    yield PgConnection(conn, opening)
                except BaseException:
                    if not conn.broken:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                self._pool.putconn(conn)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of one read-only statement (``?`` placeholders), run on its own: one
        statement sees one snapshot without a transaction, so it costs one round trip where a
        :meth:`read` of it costs three. Inside a read on this thread, in the read's snapshot."""
        outer: PgConnection | None = getattr(self._local, "conn", None)
        if outer is not None:
            return outer.execute(sql, params).fetchall()
        with self._unavailable_raised():
            conn, rows = self._live(lambda conn: PgConnection(conn).execute(sql, params).fetchall())
            self._pool.putconn(conn)
        return rows

    @contextmanager
    def read(self) -> Iterator[PgConnection]:
        """One snapshot for a query of several statements (a page, its inputs, its total);
        a read nested in another on the same thread shares its snapshot and its connection."""
        outer: PgConnection | None = getattr(self._local, "conn", None)
        if outer is not None:
            yield outer
            return
        with self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") as conn:
            self._local.conn = conn
            try:
                yield conn
            finally:
                self._local.conn = None

    @contextmanager
    def write(
        self,
        conn: object = None,
        *,
        lock: int | None = None,
        wait_for_flush: bool = True,
        notify: str | None = None,
        first: str | None = None,
    ) -> Iterator[PgConnection]:
        """One write transaction, committed on success and rolled back on any exception.

        ``lock`` takes a transaction-scoped advisory lock first (released at commit or when
        the session dies), so that writers of one kind in every replica take turns.
        ``wait_for_flush=False`` commits without waiting for the WAL's flush
        (``synchronous_commit = off``), for a transaction whose loss in a crash of the server
        the caller has shown harmless. ``notify`` names a channel notified at the commit (and
        only if it commits). ``first``, a statement of ours without parameters, runs before
        anything else; its rows are the connection's ``opening_rows``. All of them travel with
        the ``BEGIN``. ``conn`` is accepted for the SQLite interface's sake and ignored: a
        pooled connection is taken.
        """
        begin = "; ".join(_opening(wait_for_flush, lock, notify, first))
        with self._transaction(begin) as pg:
            yield pg

    def script(
        self,
        statements: Sequence[tuple[str, Sequence[Any]]],
        *,
        lock: int | None = None,
        wait_for_flush: bool = True,
        notify: str | None = None,
        first: str | None = None,
    ) -> tuple[list[Any], list[list[Any]]]:
        """One write transaction of ``statements`` (each ``(sql, params)``, ``?`` placeholders)
        sent as one query, in one round trip where :meth:`write` takes two more than it has
        statements; the options are :meth:`write`'s. Returns the ``first`` statement's rows and
        each statement's rows. For statements that do not depend on each other's results in
        Python: a condition (a fence) is written into the statements themselves.

        The parameters are bound by psycopg on the client (``ClientCursor``: the simple query
        protocol, the only one that carries several statements), quoted as literals."""
        import psycopg

        opening = _opening(wait_for_flush, lock, notify, first)
        text = "; ".join([*opening, *(sql.replace("?", "%s") for sql, _ in statements), "COMMIT"])
        params = [p for _, ps in statements for p in ps]
        with self._unavailable_raised():
            conn, sets = self._live(
                lambda conn: _result_sets(psycopg.ClientCursor(conn), text, params)
            )
            self._pool.putconn(conn)
        first_rows = sets[len(opening) - 1] if first is not None else []
        return first_rows, sets[len(opening) : len(opening) + len(statements)]

    def write_if(
        self,
        condition: tuple[str, Sequence[Any]],
        statements: Sequence[tuple[str, Sequence[Any]]],
        *,
        lock: int | None = None,
    ) -> bool:
        """Run ``statements`` (each ``(sql, params)``) in one write transaction if
        ``condition``, a query of one boolean, holds inside it (after ``lock``); whether it
        held (else nothing changed). One round trip: the condition is checked by a statement
        that fails the script when it does not hold (casting a text of ours to an integer,
        which plain SQL offers where it has no ``RAISE``), so everything after it is rolled
        back with it."""
        import psycopg

        sql, params = condition
        guard = (
            f"SELECT CAST(CASE WHEN ({sql}) THEN '1' ELSE '{_CONDITION_FAILED}' END AS INTEGER)",
            params,
        )
        try:
            self.script([guard, *statements], lock=lock)
        except psycopg.errors.InvalidTextRepresentation as exc:
            if _CONDITION_FAILED not in str(exc):
                raise
            return False
        return True

    def close(self) -> None:
        """Close the pool. Idempotent."""
        self._pool.close()


def _opening(
    wait_for_flush: bool, lock: int | None, notify: str | None, first: str | None
) -> list[str]:
    """The statements a write transaction opens with (see :meth:`PgConnections.write`)."""
    opening = ["BEGIN"]
    if not wait_for_flush:
        opening.append("SET LOCAL synchronous_commit = off")
    if lock is not None:
        opening.append(f"SELECT pg_advisory_xact_lock({int(lock)})")
    if notify is not None:
        assert notify.isidentifier(), notify  # a channel name of ours, never input
        opening.append(f"NOTIFY {notify}")
    if first is not None:
        opening.append(first)
    return opening


def _result_sets(cursor: Any, text: str, params: Sequence[Any]) -> list[list[Any]]:
    """Run a script of statements on ``cursor`` and return every statement's rows; a failed
    statement rolls the script's transaction back before the error is raised."""
    try:
        cursor.execute(text, params)
    except BaseException:
        if not cursor.connection.broken:
            cursor.connection.execute("ROLLBACK")
        raise
    return _each_rows(cursor)


def _each_rows(cursor: Any) -> list[list[Any]]:
    """The rows of each statement a cursor ran in one query (none for one that returns none)."""
    sets: list[list[Any]] = []
    while True:
        sets.append(cursor.fetchall() if cursor.description else [])
        if not cursor.nextset():
            return sets


class PgDeploymentRecord:
    """The deployment record (the JSON ``deployment.json`` holds) as the database's one
    ``deployment`` row, so every replica serves the contract ``provenance deploy`` recorded
    (a ``RecordPlace`` of :mod:`ledger.chain.deployment`)."""

    def __init__(self, db: PgConnections) -> None:
        self._db = db

    def __str__(self) -> str:
        return f"the deployment table of {self._db.path}"

    def read_text(self) -> str | None:
        with self._db.read() as conn:
            row = conn.execute("SELECT record FROM deployment WHERE id = 1").fetchone()
        return None if row is None else row["record"]

    def write_text(self, text: str) -> None:
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO deployment (id, record) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET record = excluded.record",
                (text,),
            )

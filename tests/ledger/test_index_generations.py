"""The index across contract generations, when a superseded generation keeps taking writes: an
older generation knows nothing of its successor, so its own registrars can still register a
hash the newest generation holds, or revoke a record already revoked through the newest. The
index follows what the newest generation answers (the write it holds stands, the first
revocation stands), keeps syncing, and still fails loudly on an event applied twice.

Part of the index's conformance suite: every test runs on SQLite and PostgreSQL, on the
embedded chain (and anvil with SQLite)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from ledger.chain.client import Generation, LedgerClient
from ledger.index import _sync as _index_sync
from ledger.index._superseded import Generations
from ledger.index.fsck import fsck
from ledger.index.sqlite import LedgerIndex
from ledger.storage.artifacts import ArtifactStore
from tests.ledger.test_index import h, register

A, B, X, Y = h(1), h(2), h(3), h(4)
MODEL, MODEL2 = h(10), h(11)
ALL = (A, B, X, Y, MODEL, MODEL2)


@pytest.fixture(params=["sqlite", "postgres"])
def index(request: pytest.FixtureRequest, tmp_path: Path):
    """An empty index on each engine (PostgreSQL on the embedded chain only, as in
    ``tests/ledger/test_index.py``: the engine is what varies)."""
    if request.param == "sqlite":
        with LedgerIndex(tmp_path / "index.sqlite") as opened:
            yield opened
        return
    if "anvil" in request.node.callspec.params.values():
        pytest.skip("the engine is what varies: PostgreSQL runs on the embedded chain only")
    from ledger.index.postgres import PostgresIndex

    with PostgresIndex(request.getfixturevalue("empty_pg")) as opened:
        yield opened


@pytest.fixture
def ledger(chain):
    """Generation 1 holding datasets A and B and a model on A; generation 2 succeeding it; a
    client of each generation for the same admin (``newest`` follows both, as the service's)."""
    account = chain.account()
    first, _ = LedgerClient.deploy(chain.backend, account)
    register(first, A)
    register(first, B)
    first.register_model(MODEL, datasets=[A], metadata_hash=h(60))
    second, deployed = LedgerClient.deploy(chain.backend, account, predecessor=first.address)
    newest = LedgerClient(
        chain.backend,
        account,
        second.address,
        deploy_block=first.deploy_block,
        transactor=second.transactor,
        generations=(
            Generation(first.address, first.deploy_block, deployed.block_number - 1),
            Generation(second.address, deployed.block_number),
        ),
    )
    first_shared = LedgerClient(  # the same account's nonce, owned by one transactor
        chain.backend, account, first.address, transactor=second.transactor
    )
    return first_shared, newest


def superseded_writes(first: LedgerClient, newest: LedgerClient, after_each=lambda: None):
    """What generation 1's registrars may still do after the upgrade, next to generation 2."""
    steps = [
        lambda: register(newest, X),  # generation 2 registers X...
        lambda: register(first, X, parents=[A], transform=h(50)),  # ...and generation 1 too
        lambda: first.revoke(X, "generation 1 revokes its own copy"),  # not what 2 reads
        lambda: newest.revoke(B, "revoked through generation 2"),  # the first revocation...
        lambda: first.revoke(B, "revoked again in generation 1"),  # ...stands
        lambda: register(first, Y),  # a new hash in generation 1: the newest reads it
        lambda: first.register_model(MODEL2, datasets=[Y], metadata_hash=h(61)),
        lambda: first.revoke(A, "revoked in generation 1 after the upgrade"),  # counts too
    ]
    for step in steps:
        step()
        after_each()


def answers(index) -> dict:
    """Everything the index answers about the ledger's records."""
    return {
        "records": [
            (r.kind, r.record_hash, r.registration, r.revocation)
            for r in (index.dataset(x) or index.model(x) for x in ALL)
        ],
        "datasets": index.datasets(0, 100),
        "models": index.models(0, 100),
        "children": [index.children_of_dataset(d) for d in (A, B, X, Y)],
        "models_of": [index.models_of_dataset(d) for d in (A, B, X, Y)],
        "revoked_and_tainted": index.revoked_and_tainted(),
    }


def test_superseded_writes_follow_the_newest_generation(ledger, index, tmp_path, caplog):
    first, newest = ledger
    assert index.sync(newest) == 3
    with caplog.at_level(logging.WARNING, logger="provenance.index"):
        superseded_writes(first, newest)
        index.sync(newest)
        assert index.sync(newest) == 0  # healthy: the next sync has nothing left to apply
    # 1. The index answers what the newest generation answers, field by field.
    states = newest.get_records(ALL)
    for record_hash, state in zip(ALL, states, strict=True):
        found = index.dataset(record_hash) or index.model(record_hash)
        assert found is not None and found.kind == state.kind.name.lower(), record_hash
        assert found.registration.registrant == state.registrant
        assert found.registration.registered_at == state.registered_at
        assert found.revoked == state.revoked, record_hash
    assert [index.dataset(x).revoked for x in (A, B, X, Y)] == [True, True, False, False]
    # 2. The writes that stand are the newest generation's: X as generation 2 registered it (no
    #    parents), B's revocation through generation 2; MODEL2 trained on Y counts (a new hash).
    assert index.dataset(X).parents == () and index.dataset(X).registration == (
        _registration_event(newest, X)
    )
    assert index.dataset(B).revocation.reason == "revoked through generation 2"
    assert index.model(MODEL2).datasets == (Y,)
    assert index.revoked_and_tainted()[1] == frozenset({MODEL})  # trained on A
    # 3. Each skipped write is logged naming both events.
    skipped = [r.getMessage() for r in caplog.records if "superseded generation 1" in r.message]
    assert len(skipped) == 3, skipped
    assert all(m.count("tx 0x") == 2 for m in skipped)
    # 4. fsck is clean, and an index rebuilt from the chain equals the live one, as does one
    #    synced after every write (it decides each superseded revocation from an earlier sync's
    #    rows, finding their generation through the receipt).
    store = ArtifactStore(tmp_path / "artifacts")  # empty: missing files are not the topic
    assert [f for f in fsck(store, index, newest) if f.kind == "index-mismatch"] == []
    with LedgerIndex(tmp_path / "rebuilt.sqlite") as rebuilt:
        rebuilt.rebuild(newest)
        assert answers(rebuilt) == answers(index)


def test_an_index_synced_after_every_write_agrees(ledger, tmp_path):
    first, newest = ledger
    with (
        LedgerIndex(tmp_path / "step.sqlite", chunk_blocks=1) as step,
        LedgerIndex(tmp_path / "whole.sqlite") as whole,
    ):
        step.sync(newest)
        superseded_writes(first, newest, after_each=lambda: step.sync(newest))
        whole.rebuild(newest)
        assert answers(step) == answers(whole)
        assert step.dataset(X).revocation is None and step.dataset(A).revoked


def test_the_same_event_applied_twice_still_fails_loudly(ledger, index):
    first, newest = ledger
    superseded_writes(first, newest)
    index.sync(newest)
    generations = Generations(newest)
    start = newest.generations[1].first_block
    events = _index_sync._record_events(newest, start, newest.latest_block(), 100, generations)
    counted = [e for e in events if getattr(e, "reason", "").endswith("after the upgrade")]
    assert len(counted) == 1 and (counted[0].tx_hash, counted[0].log_index) in (
        generations.superseded
    )
    times = {e.block_number: 0 for e in counted}
    with pytest.raises(Exception) as failed, index._db.write() as conn:
        _index_sync.apply_events(
            conn, counted, times, contract=newest.address, generations=generations
        )
    assert _is_integrity_error(failed.value), failed.value


def _registration_event(client: LedgerClient, record_hash: str):
    from ledger.index.base import Registration

    event = client.dataset_registration(record_hash)  # the first in chain order
    return Registration(
        registrant=event.registrant,
        tx_hash=event.tx_hash,
        block_number=event.block_number,
        registered_at=client.get_records([record_hash])[0].registered_at,
        log_index=event.log_index,
    )


def _is_integrity_error(error: BaseException) -> bool:
    if isinstance(error, sqlite3.IntegrityError):
        return True
    import psycopg

    return isinstance(error, psycopg.errors.IntegrityError)


# -- each generation's roles are its own ----------------------------------------------------------


def test_a_registrar_of_generation_2_only_is_no_registrar_of_generation_1(chain, ledger, index):
    """Each generation has its own AccessControl: a REGISTRAR_ROLE grant in generation 2 says
    nothing of generation 1. The index keeps the generation of each change, and a verifier that
    falls back on the role's history (a node keeping no old state) asks for the generation that
    logged the event it checks, with the index's copy or without it."""
    from ledger.reading._jsonrpc import NodeError
    from ledger.reading.chain_facts import ChainFacts, Located
    from ledger.records import PredictionsAnchored

    first, newest = ledger
    signer = chain.account().address
    granted = newest.grant_registrar(signer)  # in generation 2 only
    index.sync(newest)
    changes, covered = index.registrar_changes(signer, first.address)
    assert (changes, covered) == ([], newest.latest_block())
    changes, _ = index.registrar_changes(signer, newest.address)
    assert [(block, on) for block, _, on in changes] == [(granted.block_number, True)]
    assert index.block_of("DatasetRegistered", A, first.address) == (
        index.dataset(A).registration.block_number
    )
    assert index.block_of("DatasetRegistered", A, newest.address) is None

    # an anchoring after the grant, logged by generation 1 or by generation 2
    register(newest, X)
    anchoring = PredictionsAnchored(
        tx_hash="0x" + "00" * 32,
        block_number=newest.latest_block(),
        log_index=0,
        root="0x" + "11" * 32,
        model_hash=MODEL,
        registrant=signer,
        count=1,
    )
    for role_history in (index.registrar_changes, None):
        newest.role_history = role_history
        facts = ChainFacts.for_client(newest)

        def no_old_state(account, block="latest", **where):
            raise NodeError("missing trie node")  # a pruned node: the history answers

        facts.reader.has_role = no_old_state  # type: ignore[method-assign]
        head = facts.snapshot().head
        assert facts.role_at(signer, Located(anchoring, contract=first.address), head) is False
        assert facts.role_at(signer, Located(anchoring), head) is True
        assert facts.role_at(signer, Located(anchoring, contract=newest.address), head) is True
    newest.role_history = None
    assert [on for _, _, on in newest.registrar_history(signer)] == [True]
    first.grant_registrar(signer)  # generation 1's own grant is not generation 2's
    assert [on for _, _, on in newest.registrar_history(signer)] == [True]


# -- an index of the previous schema ------------------------------------------------------------


def _contract_rows(db) -> dict:
    """The rows that say which generation logged them, and the backfill's mark."""
    with db.read() as conn:
        rows = {
            table: sorted(
                tuple(row[c] for c in ("block_number", "log_index", "contract"))
                for row in conn.execute(f"SELECT block_number, log_index, contract FROM {table}")
            )
            for table in ("records", "revocations", "registrar_roles")
        }
        marks = conn.execute("SELECT key FROM meta WHERE key = 'backfill_contracts'").fetchall()
    return rows | {"marked": bool(marks)}


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_an_index_of_schema_version_2_is_migrated_and_backfilled(
    chain, ledger, engine, tmp_path, request
):
    """A file of schema version 2 (SQLite), or a database at Alembic revision r0004
    (PostgreSQL), holding a ledger of two generations with writes and roles in both, opens
    after the upgrade with its rows kept: the migration adds the ``contract`` columns empty and
    marks them; until the next sync the index answers no role history (it cannot tell the
    generations apart); that sync fills every row from the chain's logs and applies the new
    events, and the result equals an index rebuilt from the chain."""
    first, newest = ledger
    superseded_writes(first, newest)
    signer = chain.account().address
    newest.grant_registrar(signer)
    first.grant_registrar(signer)
    if engine == "sqlite":
        path = tmp_path / "index.sqlite"
        with LedgerIndex(path) as index:
            index.sync(newest)
            before = _contract_rows(index._db)
        with sqlite3.connect(path) as db:  # the version-2 layout, rows kept
            for table in ("records", "revocations", "registrar_roles"):
                db.execute(f"ALTER TABLE {table} DROP COLUMN contract")
            db.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
        reopen = lambda: LedgerIndex(path)  # noqa: E731 - the migration runs on open
    else:
        if chain.name != "embedded":
            pytest.skip("the engine is what varies: PostgreSQL runs on the embedded chain only")
        from ledger.index.postgres import PostgresIndex
        from ledger.storage.postgres import PgConnections
        from ledger.storage.schema import current_revision, upgrade
        from tests._servers import scratch_database

        url = _scratch(request, scratch_database)
        upgrade(url)
        pool = PgConnections(url, max_size=2)
        request.addfinalizer(pool.close)
        PostgresIndex(pool).sync(newest)
        before = _contract_rows(pool)
        _downgrade(url, "r0004")  # the version-2 layout, rows kept
        assert current_revision(pool) == "r0004"
        upgrade(url)  # r0005: what `provenance db upgrade` runs
        reopen = lambda: PostgresIndex(pool)  # noqa: E731
    assert all(contract for rows in before.values() if rows for *_, contract in rows)
    with reopen() as index:
        migrated = _contract_rows(index._db)
        assert migrated["marked"] is True
        assert migrated["registrar_roles"] == [
            (b, i, None) for b, i, _ in before["registrar_roles"]
        ]
        assert index.registrar_changes(signer, newest.address) == ([], None)
        register(newest, h(5))
        assert index.sync(newest) == 1
        after = _contract_rows(index._db)
        assert after["marked"] is False
        new = index.dataset(h(5)).registration
        assert [r for r in after["records"] if r not in before["records"]] == [
            (new.block_number, new.log_index, newest.address.lower())
        ]
        assert {t: after[t] for t in ("revocations", "registrar_roles")} == {
            t: before[t] for t in ("revocations", "registrar_roles")
        }
        changes, covered = index.registrar_changes(signer, first.address)
        assert len(changes) == 1 and covered == index.last_block
        live = answers(index)
    with LedgerIndex(tmp_path / "rebuilt.sqlite") as rebuilt:
        rebuilt.rebuild(newest)
        assert _contract_rows(rebuilt._db) == after
        assert answers(rebuilt) == live


def _scratch(request: pytest.FixtureRequest, scratch_database) -> str:
    """A database of its own for this test (it migrates the schema down and up again)."""
    context = scratch_database()
    url = context.__enter__()
    request.addfinalizer(lambda: context.__exit__(None, None, None))
    return url


def _downgrade(url: str, target: str) -> None:
    """Alembic's downgrade to ``target`` on the database at ``url``: the schema an older
    release left (what `provenance db upgrade` then migrates)."""
    from alembic import command
    from sqlalchemy import create_engine

    from ledger.storage import schema

    engine = create_engine(schema._sqlalchemy_url(url))
    try:
        with engine.begin() as connection:
            config = schema._config()
            config.attributes["connection"] = connection
            command.downgrade(config, target)
    finally:
        engine.dispose()

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
        _index_sync.apply_events(conn, counted, times, generations=generations)
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

"""API keys and the deployment record, conformance on each engine: a SQLite file (a JSON file
for the deployment) and the shared PostgreSQL database, each test written once. Two handles on
one storage play two replicas: what one writes, the other reads at once."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from api.keys import ApiKeys, KeyStore
from ledger.chain.deployment import Deployment, GenerationRecord

pytestmark = pytest.mark.usefixtures("isolated_cwd")

ENGINES = ["sqlite", "postgres"]


@pytest.fixture(params=ENGINES)
def two_key_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ApiKeys, ...]]:
    if request.param == "sqlite":
        yield KeyStore(tmp_path / "keys.sqlite3"), KeyStore(tmp_path / "keys.sqlite3")
        return
    from api.pg_keys import PgKeyStore
    from ledger.storage.postgres import PgConnections

    request.getfixturevalue("empty_pg")
    other = PgConnections(request.getfixturevalue("pg_url"), max_size=2)
    yield PgKeyStore(request.getfixturevalue("pg")), PgKeyStore(other)
    other.close()


def test_a_key_created_by_one_replica_works_on_another_until_revoked(two_key_stores) -> None:
    one, other = two_key_stores
    info, key = one.create("registrar", "ci")
    assert key.startswith(f"pl_{info.key_id}_") and info.active
    assert other.authenticate(key) == info
    assert other.authenticate(key + "x") is None and other.authenticate("") is None
    found = other.active_digest(info.key_id)
    assert found is not None and found[0] == info and key not in found[1]  # a hash, not the key
    assert [k.key_id for k in other.list()] == [info.key_id]
    assert other.revoke(info.key_id) and not other.revoke(info.key_id)
    assert one.authenticate(key) is None and one.active_digest(info.key_id) is None
    [listed] = one.list()
    assert listed.revoked_at is not None and not listed.active
    with pytest.raises(ValueError, match="role must be one of"):
        one.create("superuser")


def test_replicas_starting_together_create_one_admin_key(two_key_stores, tmp_path) -> None:
    one, other = two_key_stores
    assert not one.has_admin()
    files = [tmp_path / "a.key", tmp_path / "b.key"]
    with ThreadPoolExecutor(2) as pool:
        made = list(pool.map(lambda s, f: s.ensure_admin_key(f), (one, other), files))
    assert sorted(m is None for m in made) == [False, True]  # one created, one found it
    [key] = [m for m in made if m is not None]
    [written] = [f for f in files if f.exists()]
    assert written.read_text().strip() == key
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert other.authenticate(key).role == "admin" and one.has_admin()


@pytest.fixture(params=ENGINES)
def place(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        return tmp_path / "deployment.json"
    from ledger.storage.postgres import PgDeploymentRecord

    return PgDeploymentRecord(request.getfixturevalue("empty_pg"))


def test_the_deployment_record_round_trips(place) -> None:
    assert Deployment.load(place) is None
    record = Deployment(
        chain_id=31337,
        address="0x" + "ab" * 20,
        tx_hash="0x" + "cd" * 32,
        block_number=7,
        code_hash="sha256:" + "ef" * 32,
        deployer="0x" + "12" * 20,
    )
    record.save(place)
    assert Deployment.load(place) == record
    moved = Deployment(**{**record.__dict__, "block_number": 8})
    moved.save(place)
    assert Deployment.load(place) == moved
    first = GenerationRecord(record.address, "1.1.0", record.code_hash, record.tx_hash, 7, 11)
    newest = GenerationRecord(
        "0x" + "34" * 20, "1.2.0", "sha256:" + "56" * 32, "0x" + "78" * 32, 12
    )
    upgraded = Deployment(
        **{**record.__dict__, "address": newest.address, "generations": (first, newest)}
    )
    upgraded.save(place)
    assert Deployment.load(place) == upgraded


@pytest.mark.anvil
def test_the_cli_deploys_keys_and_rebuilds_into_the_shared_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anvil_node, pg_url, empty_pg
) -> None:
    """`provenance deploy`, `upgrade-contract`, `keys` and `index rebuild` with
    PROVENANCE_DATABASE_URL set act on the database every replica reads, and leave nothing in
    the data directory. (The deployment is of the released 1.1.0 contract, so that there is
    something to upgrade.)"""
    from typer.testing import CliRunner

    from api.cli import app as cli
    from api.pg_keys import PgKeyStore
    from ledger.chain import deployment
    from ledger.chain.contract_artifact import load_artifact
    from ledger.chain.keys import create_keystore
    from ledger.index.postgres import PostgresIndex
    from ledger.storage.postgres import PgDeploymentRecord

    monkeypatch.setenv("PROVENANCE_DATABASE_URL", pg_url)
    monkeypatch.setenv("PROVENANCE_KEYSTORE_PASSWORD", "pw")
    keystore = tmp_path / "key.json"
    anvil_node.set_balance(create_keystore(keystore, "pw").address, 10**21)
    data_dir = tmp_path / "data"
    deploy = ["deploy", "--rpc-url", anvil_node.url, "--keystore", str(keystore)]
    released = load_artifact(
        Path(__file__).parents[1] / "fixtures" / "contracts" / "ProvenanceLedger-1.1.0.json"
    )
    with monkeypatch.context() as patch:
        patch.setattr(deployment, "load_artifact", lambda: released)
        patch.setattr("ledger.chain.client.load_artifact", lambda: released)
        done = CliRunner().invoke(cli, [*deploy, "--data-dir", str(data_dir)])
    assert done.exit_code == 0, done.output
    record = Deployment.load(PgDeploymentRecord(empty_pg))
    assert record is not None and record.address in done.output
    again = CliRunner().invoke(cli, [*deploy, "--data-dir", str(tmp_path / "elsewhere")])
    assert again.exit_code == 1 and "already records" in again.output
    assert "the deployment table of postgresql://" in again.output

    keys = ["keys", "create", "--role", "auditor", "--data-dir", str(tmp_path / "keys")]
    made = CliRunner().invoke(cli, keys)
    assert made.exit_code == 0, made.output
    [info] = PgKeyStore(empty_pg).list()
    assert info.role == "auditor" and info.key_id in made.output

    upgrade = ["upgrade-contract", "--rpc-url", anvil_node.url, "--keystore", str(keystore)]
    upgraded = CliRunner().invoke(cli, [*upgrade, "--data-dir", str(data_dir)])
    assert upgraded.exit_code == 0, upgraded.output
    both = Deployment.load(PgDeploymentRecord(empty_pg))
    assert [g.address for g in both.generations] == [record.address, both.address]

    monkeypatch.setenv("PROVENANCE_CHAIN", "rpc")
    monkeypatch.setenv("PROVENANCE_RPC_URL", anvil_node.url)
    rebuilt = CliRunner().invoke(cli, ["index", "rebuild", "--data-dir", str(data_dir)])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert PostgresIndex(empty_pg).last_block is not None
    assert not data_dir.exists() or not any(data_dir.glob("*.sqlite3"))
    assert not (data_dir / "deployment.json").exists()


def test_a_job_started_on_one_replica_is_polled_on_another(pg, empty_pg) -> None:
    """Bulk work submitted to one replica's pool: another replica's pool (its own pool of
    connections) answers the poll with the same view, its owner's rule included, through
    running, done and failed."""
    import threading

    from api.jobs import WorkPool
    from api.keys import KeyInfo
    from api.pg_jobs import PgJobBook
    from ledger.errors import UnknownRecord
    from ledger.storage.postgres import PgConnections

    auditor = KeyInfo("aud1", "auditor", "", 0, None)
    stranger = KeyInfo("aud2", "auditor", "", 0, None)
    admin = KeyInfo("adm1", "admin", "", 0, None)
    other_db = PgConnections(pg._pool.conninfo, max_size=2)
    one = WorkPool(1, 4, book=PgJobBook(pg))
    other = WorkPool(1, 4, book=PgJobBook(other_db))
    release = threading.Event()

    def work(job):  # type: ignore[no-untyped-def]
        job.progress(0, 2)
        release.wait(30)
        return {"checked": 2}

    def fails(job):  # type: ignore[no-untyped-def]
        raise UnknownRecord("no such receipt")

    try:
        started = one.submit("verify-bulk", auditor, work)
        seen = other.get(started.job_id, auditor)
        assert seen is not None and seen.view()["state"] in ("queued", "running")
        assert other.get(started.job_id, stranger) is None  # as if unknown
        assert other.get(started.job_id, None) is None
        release.set()
        for _ in range(100):
            if (seen := other.get(started.job_id, admin)).state == "done":
                break
            threading.Event().wait(0.05)
        assert seen.view() == one.get(started.job_id, auditor).view()
        assert seen.result == {"checked": 2} and seen.total == 2
        failed = one.submit("verify-bulk", auditor, fails)
        for _ in range(100):
            if (seen := other.get(failed.job_id, auditor)).state == "failed":
                break
            threading.Event().wait(0.05)
        assert seen.problem["status"] == 404 and "no such receipt" in seen.problem["detail"]
        assert other.get("0" * 16, admin) is None
    finally:
        release.set()
        one.close()
        other.close()
        other_db.close()

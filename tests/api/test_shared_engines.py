"""``provenance serve`` on the shared engines, end to end through real servers: PostgreSQL (a
scratch database) and SeaweedFS's S3, each reached through a loopback forwarder the test can cut
(``tests/_proxy.py``), so that "the database is away" and "the object store is away" are real
network failures of real servers that other engineers' tests on the machine never see.

* ``provenance db upgrade`` run by three processes at once on an empty database;
* a service refusing a schema of another revision, naming both and the command to run;
* register, derive, train, predict, anchor and verify with both variables set, the records
  found in PostgreSQL and the files in the bucket, not under the data directory;
* the object store away: 503 ``artifact-store-unavailable`` with ``Retry-After``, nothing
  written anywhere, and the same upload accepted once it is back;
* PostgreSQL away: 503 ``store-unavailable`` with ``Retry-After`` (never a 500, nor a 401 for a
  valid key), and every request answered again by itself once it is back.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from api.devserver import ServiceProcess
from ledger.storage.schema import head
from tests._proxy import TcpProxy
from tests._servers import Seaweed, scratch_database
from tests.api.test_server_e2e import RAW_CSV, STEPS, admin_headers, ok, problem

pytestmark = pytest.mark.slow


@dataclass
class Shared:
    """A running service on PostgreSQL + S3, and the handles a test needs around it."""

    api: httpx.Client
    server: ServiceProcess
    database_url: str  # straight to the server, not through the proxy
    bucket: str
    seaweed: Seaweed
    pg_proxy: TcpProxy
    s3_proxy: TcpProxy

    def rows(self, query: str) -> list[tuple]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(query).fetchall()

    def objects(self) -> list[str]:
        listed = self.seaweed.client().list_objects_v2(Bucket=self.bucket, Prefix="ledger/")
        return sorted(item["Key"] for item in listed.get("Contents", []))


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "api", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_three_processes_upgrading_an_empty_database_at_once() -> None:
    with scratch_database() as url:
        runs = [_cli("db", "upgrade", "--database-url", url) for _ in range(3)]
        outputs = [(run.wait(120), *run.communicate()) for run in runs]
        assert [status for status, _, _ in outputs] == [0, 0, 0], outputs
        said = sorted(" ".join(out.split()) for _, out, _ in outputs)
        assert sum("upgraded" in line for line in said) == 1, said
        assert sum("nothing to do" in line for line in said) == 2, said
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head(),)]
            tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables")}
        assert {"records", "datasets", "api_keys", "deployment", "meta"} <= tables


def test_a_service_refuses_a_schema_of_another_revision(tmp_path: Path) -> None:
    """Empty (through `provenance serve`: it exits at once with one line, no traceback), then
    behind (another revision recorded): refused, naming the revision found, the one it needs,
    and `provenance db upgrade`; nothing is created meanwhile."""
    import os

    from api.app import create_app
    from api.settings import Settings
    from ledger.storage.schema import SchemaMismatch

    with scratch_database() as url:
        env = {**os.environ, "PROVENANCE_DATABASE_URL": url}
        run = _cli("serve", "--port", "1", "--data-dir", str(tmp_path / "data"), env=env)
        status, _, err = run.wait(120), *run.communicate()
        err = " ".join(err.split())
        assert status != 0 and "has no schema yet" in err and head() in err, err
        assert "provenance db upgrade" in err and "Traceback" not in err, err
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT to_regclass('records')").fetchone() == (None,)
        assert _cli("db", "upgrade", env=env).wait(120) == 0
        with psycopg.connect(url) as conn:
            conn.execute("UPDATE alembic_version SET version_num = 'r0000_older'")
        with pytest.raises(SchemaMismatch) as refused:
            create_app(Settings(data_dir=tmp_path / "other", database_url=url))
        assert (refused.value.found, refused.value.expected) == ("r0000_older", head())
        message = str(refused.value)
        assert "revision r0000_older" in message and "provenance db upgrade" in message


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, seaweed: Seaweed) -> Iterator[Shared]:
    bucket = seaweed.create_bucket()
    with scratch_database() as url:
        assert _cli("db", "upgrade", "--database-url", url).wait(120) == 0
        pg_proxy = TcpProxy(5432)
        s3_proxy = TcpProxy(int(seaweed.endpoint.rsplit(":", 1)[1]))
        env = {
            **seaweed.env(),
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_proxy.port}",
            "PROVENANCE_DATABASE_URL": url.replace(":5432/", f":{pg_proxy.port}/"),
            "PROVENANCE_ARTIFACTS_URL": f"s3://{bucket}/ledger",
            "PROVENANCE_ANCHOR_INTERVAL": "3600",  # anchored when the test says so
            "PROVENANCE_DATABASE_POOL_TIMEOUT": "2",
            "PROVENANCE_ARTIFACTS_TIMEOUT": "2",
        }
        data_dir = tmp_path_factory.mktemp("shared") / "data"
        with ServiceProcess(data_dir, env=env) as server:
            try:
                with httpx.Client(
                    base_url=server.url, headers=admin_headers(data_dir), timeout=120
                ) as api:
                    yield Shared(api, server, url, bucket, seaweed, pg_proxy, s3_proxy)
            except BaseException:
                print(server.log_tail(20_000))
                raise
            finally:
                pg_proxy.start() if pg_proxy._listener is None else None
                s3_proxy.start() if s3_proxy._listener is None else None
            assert "Traceback" not in server.log_tail(1_000_000)
        pg_proxy.stop()
        s3_proxy.stop()


def test_the_whole_flow_on_postgresql_and_s3(shared: Shared) -> None:
    api = shared.api
    raw = ok(api.post("/v1/datasets", files={"file": ("sales.csv", RAW_CSV)}), 201)
    clean = ok(api.post(f"/v1/datasets/{raw['content_hash']}/derive", json={"steps": STEPS}), 201)
    request = {"dataset": clean["content_hash"], "algorithm": "linear_regression", "target": "y"}
    model = ok(api.post("/v1/models", json={**request, "test_size": 0, "seed": 0}), 201)
    rows = [{"x1": 150, "x2": 250}]
    [receipt] = ok(api.post(f"/v1/models/{model['model_hash']}/predict", json={"rows": rows}))[
        "receipts"
    ]
    ok(api.post("/v1/anchor"))
    anchored = ok(api.get(f"/v1/receipts/{receipt['receipt_id']}"))
    report = ok(api.post("/v1/verify/receipt", json={"receipt": anchored}))
    assert report["verdict"] == "valid", report
    assert api.get(f"/v1/datasets/{raw['content_hash']}/content").content == RAW_CSV.encode()
    ok(api.get(f"/v1/datasets/{raw['content_hash']}/rows/1/proof"))

    # the state is where the variables put it: records and keys in PostgreSQL ...
    kinds = dict(shared.rows("SELECT hash, kind FROM records"))
    assert kinds[raw["content_hash"]] == kinds[clean["content_hash"]] == "dataset"
    assert kinds[model["model_hash"]] == "model" and "batch" in kinds.values()
    assert shared.rows("SELECT role FROM api_keys") == [("admin",)]
    [(deployment,)] = shared.rows("SELECT record FROM deployment")
    assert ok(api.get("/v1/chain"))["contract_address"].lower() in deployment.lower()
    # ... files in the bucket, and no SQLite index, key store or deployment file
    stored = shared.objects()
    for digest in (raw["content_hash"], clean["content_hash"], model["model_hash"]):
        assert f"ledger/sha256/{digest[2:4]}/{digest[4:]}" in stored
    assert f"ledger/rows/{raw['content_hash'][2:4]}/{raw['content_hash'][4:]}" in stored
    leftovers = {p.name for p in shared.server.data_dir.iterdir()}
    assert not leftovers & {"index.sqlite3", "keys.sqlite3", "deployment.json"}, leftovers


def test_the_object_store_away_answers_503_and_writes_nothing(shared: Shared) -> None:
    api, csv = shared.api, "a,b\n1,2\n3,4\n5,7\n"
    before = (shared.rows("SELECT hash FROM records"), shared.objects())
    latest = ok(api.get("/v1/chain"))["latest_block"]
    shared.s3_proxy.stop()
    try:
        refused = api.post("/v1/datasets", files={"file": ("away.csv", csv)})
        body = problem(refused, 503, "artifact-store-unavailable")
        assert int(refused.headers["Retry-After"]) > 0 and "object store" in body["detail"]
    finally:
        shared.s3_proxy.start()
    assert ok(api.get("/v1/chain"))["latest_block"] == latest  # no transaction
    assert (shared.rows("SELECT hash FROM records"), shared.objects()) == before
    assert list((shared.server.data_dir / "artifacts" / "tmp").iterdir()) == []
    ok(api.post("/v1/datasets", files={"file": ("back.csv", csv)}), 201)  # and back


def test_postgresql_away_answers_503_store_unavailable_then_resumes(shared: Shared) -> None:
    api = shared.api
    first = ok(api.post("/v1/datasets", files={"file": ("first.csv", "a,b\n6,6\n")}), 201)
    first = ok(api.get(f"/v1/datasets/{first['content_hash']}"))
    shared.pg_proxy.stop()
    try:
        for response in (
            api.get("/v1/datasets"),  # a read
            api.get(f"/v1/datasets/{first['content_hash']}"),
            api.post("/v1/datasets", files={"file": ("x.csv", "a,b\n9,9\n")}),  # keyed write
        ):
            body = problem(response, 503, "store-unavailable")
            assert int(response.headers["Retry-After"]) > 0, response.headers
            assert "database" in body["detail"]
        # a replica that cannot reach the database is not healthy: a load balancer skips it
        problem(api.get("/healthz"), 503, "store-unavailable")
    finally:
        shared.pg_proxy.start()
    deadline = time.monotonic() + 30
    while (answer := api.get("/v1/datasets")).status_code != 200:
        assert answer.status_code == 503 and time.monotonic() < deadline, answer.text
        time.sleep(0.5)
    assert first["content_hash"] in {d["content_hash"] for d in answer.json()["data"]}
    ok(api.post("/v1/datasets", files={"file": ("y.csv", "a,b\n8,8\n")}), 201)

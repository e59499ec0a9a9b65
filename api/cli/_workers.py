"""``provenance serve --workers N``: N replicas on one machine, by the mechanism of several
machines (:mod:`ledger.writes.shared`: the shared database, one sender per key), so one
machine's cores all serve.

The parent binds the listening socket once and starts N ``provenance serve --fd FD`` children
that accept on it (the kernel hands each connection to one of them), each with a data
directory of its own (``DATA_DIR/worker-K``: scratch space, as a replica's is). Without an
object store their ``artifacts`` folders are one folder, ``DATA_DIR/artifacts`` (its writes
are atomic renames, safe between processes). A child that dies is started again; SIGTERM or
SIGINT stops them all. The first start's admin key is made here, before any child, and kept in
``DATA_DIR/admin.key`` as a single service keeps it.

Why not uvicorn's own ``--workers``: its workers are copies of one app on one data directory,
each with its own receipt book and anchorer over the same files; replicas need directories of
their own.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from api.cli._common import CommandFailed, err
from api.settings import Settings

__all__ = ["check_workers", "run_workers"]

RESTART_DELAY = 1.0  # seconds before a child that died is started again


def check_workers(settings: Settings, workers: int) -> None:
    """Several workers need the engines replicas share; say which is missing."""
    missing = []
    if settings.database_url is None:
        missing.append("PROVENANCE_DATABASE_URL (PostgreSQL: state, queue and journal)")
    if settings.chain != "rpc":
        missing.append("PROVENANCE_CHAIN=rpc with PROVENANCE_RPC_URL (one node every worker uses)")
    if missing:
        raise CommandFailed(
            f"--workers {workers} runs replicas that share their state, which needs "
            + " and ".join(missing)
            + "; the embedded chain and SQLite serve one process (--workers 1)"
        )


def _admin_key(settings: Settings) -> None:
    from api.engines import open_database, open_keys

    db = open_database(settings)
    try:
        key_file = settings.data_dir / "admin.key"
        if (key := open_keys(settings, db).ensure_admin_key(key_file)) is not None:
            err.print(f"Admin API key (shown once, kept in {key_file}):\n  {key}")
    finally:
        if db is not None:
            db.close()


def _start(k: int, fd: int, data_dir: Path, settings: Settings) -> subprocess.Popen[bytes]:
    worker_dir = data_dir / f"worker-{k}"
    worker_dir.mkdir(parents=True, exist_ok=True)
    if settings.artifacts_url is None and not (worker_dir / "artifacts").exists():
        (data_dir / "artifacts").mkdir(exist_ok=True)
        (worker_dir / "artifacts").symlink_to(data_dir / "artifacts", target_is_directory=True)
    key = data_dir / "admin.key"
    if key.exists() and not (worker_dir / "admin.key").exists():
        (worker_dir / "admin.key").symlink_to(key)
    env = {**os.environ, "PROVENANCE_DATA_DIR": str(worker_dir)}
    command = [sys.executable, "-m", "api", "serve", "--fd", str(fd), "--data-dir", str(worker_dir)]
    return subprocess.Popen(command, env=env, pass_fds=(fd,))


def run_workers(settings: Settings, workers: int, host: str, port: int) -> None:
    """Serve on ``host:port`` with ``workers`` replica processes until SIGTERM or SIGINT."""
    check_workers(settings, workers)
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    _admin_key(settings)
    listener = socket.create_server((host, port), backlog=2048)
    listener.set_inheritable(True)
    fd = listener.fileno()
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    children = {k: _start(k, fd, data_dir, settings) for k in range(workers)}
    err.print(f"{workers} workers on http://{host}:{port}, data in {data_dir}/worker-*")
    while not stopping:
        time.sleep(0.2)
        for k, child in list(children.items()):
            if child.poll() is not None and not stopping:
                err.print(f"worker {k} exited with {child.returncode}; starting it again")
                time.sleep(RESTART_DELAY)
                children[k] = _start(k, fd, data_dir, settings)
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children.values():
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
    listener.close()

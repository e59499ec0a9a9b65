"""Readings over MQTT: the service's side of the MQTT worker (:mod:`api.streaming.mqtt_worker`,
whose docstring says how it subscribes, stores and acknowledges).

Why the worker is a process of its own (issue 27): in one process, paho's network threads, the
writer checking and storing readings and the sealer registering chunks on chain all took turns
at one interpreter lock, and with ten readings a message the service ingested a quarter of what
a plain paho subscriber receives (py-spy with ``--gil``: the sealer held the lock 42% of the
time, the writer 39%, paho's threads 17%). As a process, the worker's share runs on another
core. Both write ``streams.sqlite3``, taking turns by its lock file
(:mod:`api.streaming.store`); the worker needs nothing else of the service, and imports
nothing of it (``api.streaming`` is light: it starts in well under a second where the service
takes seconds).

Several workers (``mqtt_workers``) share the connections (worker ``w`` of ``W`` opens
connections ``w``, ``w + W``, ...): each receives, checks and stores on a core of its own, and
their commits take turns as the service's do. On 2 cores one is the default: with
the sealer and the broker wanting the other core, two ingested no faster (BENCHMARKS.md,
thirteenth and fifteenth sessions: the sealer fell behind and paused them).

:class:`MqttIngest` starts the workers, tells them to pause while the sealer is behind (more
than :data:`_UNSEALED` readings waiting, see :meth:`Streams.behind`: the messages then wait on
the broker, unacknowledged, rather than as an unsealed backlog here), counts what they stored in
the stream pages' rates and the sealer's bookkeeping, starts one again if it dies, and stops
them by closing their input. A kill -9 of the service closes those inputs too, so a worker
never outlives it by more than its current commit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

import api
from api.errors import Misconfigured
from api.service.streams import Streams
from api.settings import Settings
from api.streaming.mqtt_worker import WorkerConfig, subscription

__all__ = ["MqttIngest", "broker_address"]

log = logging.getLogger("provenance.mqtt")
# Readings waiting for a seal past which the worker lets the sealer catch up first.
_UNSEALED = 50_000
_PRESSURE_TICK = 0.1  # seconds between looks at the sealer's backlog


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None


def broker_address(url: str) -> BrokerAddress:
    """``mqtt://[user[:password]@]host[:port]`` (``mqtts://`` for TLS, port 8883 by default)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise Misconfigured(f"PROVENANCE_MQTT_URL must be mqtt://host:port, got {url!r}")
    tls = parts.scheme == "mqtts"
    return BrokerAddress(
        parts.hostname,
        parts.port or (8883 if tls else 1883),
        tls,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
    )


class _WorkerProcess:
    """One worker process as the supervisor sees it: what was last said to it and by it."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.process: subprocess.Popen[str] | None = None
        self.told_pause = False  # what was last said on its input: pause (True) or go
        self.connected = False
        self.paused = False
        self.delay = 0.5  # before it is started again, should it die


class MqttIngest:
    """The MQTT workers' supervisor (see the module docstring)."""

    def __init__(self, settings: Settings, streams: Streams) -> None:
        assert settings.mqtt_url is not None
        self._streams = streams
        address = broker_address(settings.mqtt_url)
        client_id = settings.mqtt_client_id or (
            "provenance-"
            + hashlib.sha256(str(settings.data_dir.resolve()).encode()).hexdigest()[:16]
        )
        connections = settings.mqtt_connections
        workers = min(settings.mqtt_workers, connections)
        self._workers = [
            _WorkerProcess(
                WorkerConfig(
                    store=str(streams.store.path),
                    max_chars=settings.max_field_chars,
                    **asdict(address),
                    client_id=client_id,
                    prefix=settings.mqtt_topic_prefix,
                    connections=connections,
                    serves=list(range(w, connections, workers)),
                )
            )
            for w in range(workers)
        ]
        self.topic = subscription(settings.mqtt_topic_prefix, client_id, connections)
        self.connected = threading.Event()  # every connection up and its subscription acked
        self.paused = threading.Event()  # every worker stores nothing until told to go on
        # Messages each connection received, as its worker last said (after a commit).
        self.delivered = [0] * connections
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the workers' processes and states
        self._supervisor = threading.Thread(target=self._supervise, name="mqtt", daemon=True)

    @property
    def worker_pids(self) -> list[int | None]:
        """The MQTT workers' process ids (None before :meth:`start`)."""
        with self._lock:
            return [w.process.pid if w.process is not None else None for w in self._workers]

    def start(self) -> None:
        for worker in self._workers:
            self._spawn(worker)
        self._supervisor.start()

    def close(self) -> None:
        """Stop the workers (each finishes its commit); what they received and did not store
        stays unacknowledged, so the broker delivers it again to the next run."""
        self._stop.set()
        self._supervisor.join(timeout=5)
        with self._lock:
            processes = [w.process for w in self._workers if w.process is not None]
        for process in processes:
            _close(process.stdin)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log.warning("an MQTT worker did not stop within 30 s; killed")
                process.kill()
                process.wait()

    def _spawn(self, worker: _WorkerProcess) -> None:
        env = dict(os.environ)
        # the tree this service runs from, whatever the current folder
        root = str(Path(api.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        process = subprocess.Popen(
            [sys.executable, "-m", "api.streaming.mqtt_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(worker.config.line())
        process.stdin.flush()
        with self._lock:
            worker.process, worker.told_pause = process, False
        threading.Thread(
            target=self._listen, args=(worker, process), name="mqtt-listen", daemon=True
        ).start()

    def _listen(self, worker: _WorkerProcess, process: subprocess.Popen[str]) -> None:
        """What a worker says: connected or not, paused or not, what it stored."""
        assert process.stdout is not None
        for line in process.stdout:
            said = json.loads(line)
            with self._lock:
                if "connected" in said:
                    worker.connected = said["connected"]
                if "paused" in said:
                    worker.paused = said["paused"]
                if "stored" in said:
                    for k, count in zip(worker.config.serves, said["delivered"], strict=True):
                        self.delivered[k] = count
                self._sum_up()
            if "stored" in said:
                self._streams.stored(said["stored"])
        with self._lock:
            if worker.process is process:  # (not yet replaced by one that may have spoken)
                worker.connected = worker.paused = False
                self._sum_up()

    def _sum_up(self) -> None:
        """The workers' states as one (under :attr:`_lock`)."""
        connected = all(w.connected for w in self._workers)
        (self.connected.set if connected else self.connected.clear)()
        paused = all(w.paused for w in self._workers)
        (self.paused.set if paused else self.paused.clear)()

    def _supervise(self) -> None:
        """Pause the workers while the sealer is behind; start one again if it dies."""
        while not self._stop.wait(_PRESSURE_TICK):
            pause = self._streams.behind(_UNSEALED)
            for worker in self._workers:
                if self._stop.is_set():
                    return
                self._look_after(worker, pause)

    def _look_after(self, worker: _WorkerProcess, pause: bool) -> None:
        process = worker.process
        assert process is not None
        if process.poll() is not None:
            log.error("an MQTT worker stopped (exit %s); starting it again in %.1f s",
                      process.returncode, worker.delay)  # fmt: skip
            if self._stop.wait(worker.delay):
                return
            worker.delay = min(worker.delay * 2, 10.0)
            self._spawn(worker)
            return
        if worker.connected:
            worker.delay = 0.5
        if pause != worker.told_pause:
            try:
                assert process.stdin is not None
                process.stdin.write(json.dumps("pause" if pause else "go") + "\n")
                process.stdin.flush()
                worker.told_pause = pause
            except (BrokenPipeError, ValueError):  # it died: seen on the next look
                pass


def _close(stream: IO[str] | None) -> None:
    try:
        if stream is not None:
            stream.close()
    except BrokenPipeError:
        pass

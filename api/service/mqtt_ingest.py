"""Readings over MQTT: the service's side of the MQTT worker (:mod:`api.streaming.mqtt_worker`,
whose docstring says how it subscribes, stores and acknowledges).

Why the worker is a process of its own (issue 27): in one process, paho's network threads, the
writer checking and storing readings and the sealer registering chunks on chain all took turns
at one interpreter lock, and with ten readings a message the service ingested a quarter of what
a plain paho subscriber receives (py-spy with ``--gil``: the sealer held the lock 42% of the
time, the writer 39%, paho's threads 17%). As a process, the worker's share runs on another
core. Both write ``streams.sqlite3`` (SQLite serialises the two writers, each waiting up to
:data:`api.streaming.store.BUSY_SECONDS` for the other); the worker needs nothing else of the
service, and imports nothing of it (``api.streaming`` is light: it starts in well under a
second where the service takes seconds).

:class:`MqttIngest` starts the worker, tells it to pause while the sealer is behind (more than
:data:`_UNSEALED` readings waiting, see :meth:`Streams.behind`: the messages then wait on the
broker, unacknowledged, rather than as an unsealed backlog here), counts what it stored in the
stream pages' rates and the sealer's bookkeeping, starts it again if it dies, and stops it by
closing its input. A kill -9 of the service closes that input too, so the worker never outlives
it by more than its current commit.
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


class MqttIngest:
    """The MQTT worker's supervisor (see the module docstring)."""

    def __init__(self, settings: Settings, streams: Streams) -> None:
        assert settings.mqtt_url is not None
        self._streams = streams
        address = broker_address(settings.mqtt_url)
        client_id = settings.mqtt_client_id or (
            "provenance-"
            + hashlib.sha256(str(settings.data_dir.resolve()).encode()).hexdigest()[:16]
        )
        self._config = WorkerConfig(
            store=str(streams.store.path),
            max_chars=settings.max_field_chars,
            **asdict(address),
            client_id=client_id,
            prefix=settings.mqtt_topic_prefix,
            connections=settings.mqtt_connections,
        )
        self.topic = subscription(settings.mqtt_topic_prefix, client_id, settings.mqtt_connections)
        self.connected = threading.Event()  # every connection up and its subscription acked
        self.paused = threading.Event()  # the worker stores nothing until told to go on
        # Messages each connection received, as the worker last said (after a commit).
        self.delivered = [0] * settings.mqtt_connections
        self._stop = threading.Event()
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()  # the process and what was last said on its input
        self._paused = False  # what was last said: pause (True) or go
        self._supervisor = threading.Thread(target=self._supervise, name="mqtt", daemon=True)

    @property
    def worker_pid(self) -> int | None:
        """The MQTT worker's process id (None before :meth:`start`)."""
        with self._lock:
            return self._process.pid if self._process is not None else None

    def start(self) -> None:
        self._spawn()
        self._supervisor.start()

    def close(self) -> None:
        """Stop the worker (it finishes its commit); what it received and did not store stays
        unacknowledged, so the broker delivers it again to the next run."""
        self._stop.set()
        self._supervisor.join(timeout=5)
        with self._lock:
            process = self._process
        if process is None:
            return
        _close(process.stdin)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            log.warning("the MQTT worker did not stop within 30 s; killed")
            process.kill()
            process.wait()

    def _spawn(self) -> None:
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
        process.stdin.write(self._config.line())
        process.stdin.flush()
        with self._lock:
            self._process, self._paused = process, False
        threading.Thread(
            target=self._listen, args=(process.stdout,), name="mqtt-listen", daemon=True
        ).start()

    def _listen(self, source: IO[str]) -> None:
        """What the worker says: connected or not, what it stored."""
        for line in source:
            said = json.loads(line)
            if "connected" in said:
                (self.connected.set if said["connected"] else self.connected.clear)()
            if "paused" in said:
                (self.paused.set if said["paused"] else self.paused.clear)()
            if "stored" in said:
                self._streams.stored(said["stored"])
                self.delivered[:] = said["delivered"]
        self.connected.clear()

    def _supervise(self) -> None:
        """Pause the worker while the sealer is behind; start it again if it dies."""
        delay = 0.5
        while not self._stop.wait(_PRESSURE_TICK):
            with self._lock:
                process = self._process
            assert process is not None
            if process.poll() is not None:
                log.error("the MQTT worker stopped (exit %s); starting it again in %.1f s",
                          process.returncode, delay)  # fmt: skip
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, 10.0)
                self._spawn()
                continue
            if self.connected.is_set():
                delay = 0.5
            pause = self._streams.behind(_UNSEALED)
            if pause != self._paused:
                try:
                    assert process.stdin is not None
                    process.stdin.write(json.dumps("pause" if pause else "go") + "\n")
                    process.stdin.flush()
                    self._paused = pause
                except (BrokenPipeError, ValueError):  # it died: seen on the next look
                    pass


def _close(stream: IO[str] | None) -> None:
    try:
        if stream is not None:
            stream.close()
    except BrokenPipeError:
        pass

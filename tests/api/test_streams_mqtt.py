"""Readings over MQTT, against real Mosquitto brokers and publishers nobody here wrote
(``mosquitto_pub`` and a plain paho client).

* the machine's broker (127.0.0.1:1883; a private one when none listens): readings arrive, bad ones
  land in the dead letters with their reason, duplicates are stored once, a version trains a
  model that verifies ``valid``;
* a private broker (:class:`api.devbroker.MosquittoBroker`) that is restarted under the
  service: the service reconnects and subscribes again by itself;
* ``provenance serve`` killed with SIGKILL while readings stream in over MQTT and HTTP, and
  once more with a seal planned but not registered: after restarts every acknowledged reading
  is in a version exactly once.

Each test has its own topic prefix, so engineers sharing the broker never see each other's.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest

from api.devbroker import MosquittoBroker, mosquitto_binary
from api.devserver import ServiceProcess
from api.settings import Settings
from api.streaming.store import StreamStore
from tests.api.conftest import authorized_client

SYSTEM_BROKER = ("127.0.0.1", 1883)
COLUMNS = [{"name": "seq", "type": "integer"}, {"name": "value", "type": "float"}]
TIMEOUT = 60.0


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_for(condition: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def publisher(port: int) -> mqtt.Client:
    """A plain paho client, connected, its network loop running."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def publish_all(client: mqtt.Client, topic: str, payloads: list[str]) -> None:
    """Publish at QoS 1 and wait for every PUBACK from the broker."""
    infos = [client.publish(topic, p, qos=1) for p in payloads]
    for info in infos:
        info.wait_for_publish(timeout=TIMEOUT)
        assert info.is_published()


def mosquitto_pub(port: int, topic: str, message: str) -> None:
    subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic,
         "-m", message],
        check=True,
        timeout=30,
    )  # fmt: skip


def create(client: Any, name: str, **rules: Any) -> None:
    body = {"name": name, "columns": COLUMNS, "seal_readings": 100_000, "seal_seconds": 3600}
    response = client.post("/v1/streams", json={**body, **rules})
    assert response.status_code == 201, response.text


def stream(client: Any, name: str) -> dict[str, Any]:
    return client.get(f"/v1/streams/{name}").json()


def sealed_seqs(client: Any, name: str) -> list[int]:
    """The ``seq`` column of every row of every chunk of the stream's latest version."""
    [latest] = client.get(f"/v1/streams/{name}/versions?limit=1").json()["data"]
    seqs = []
    for chunk in latest["chunks"]:
        text = client.get(f"/v1/datasets/{chunk}/content").text
        seqs.extend(int(row["seq"]) for row in csv.DictReader(io.StringIO(text)))
    assert len(seqs) == latest["readings"]
    return seqs


@pytest.fixture(scope="module")
def system_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The machine's broker (127.0.0.1:1883), else one of our own."""
    if _listening(*SYSTEM_BROKER):
        yield SYSTEM_BROKER[1]
        return
    if mosquitto_binary() is None or shutil.which("mosquitto_pub") is None:
        pytest.skip("no MQTT broker at 127.0.0.1:1883 and no mosquitto to start one")
    with MosquittoBroker(tmp_path_factory.mktemp("broker")) as broker:
        yield broker.port


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    if mosquitto_binary() is None or shutil.which("mosquitto_pub") is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto mosquitto-clients)")
    with MosquittoBroker(tmp_path / "broker") as broker:
        yield broker


def test_readings_published_by_other_clients_arrive_seal_and_train(
    tmp_path: Path, system_broker: int
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:12]}/streams"
    settings = Settings(
        data_dir=tmp_path / "data",
        anchor_interval=3600,
        mqtt_url=f"mqtt://127.0.0.1:{system_broker}",
        mqtt_topic_prefix=prefix,
    )
    with authorized_client(settings) as api:
        create(api, "press")
        service = api.app.state.service  # type: ignore[attr-defined]
        assert service.mqtt.connected.wait(TIMEOUT)
        assert stream(api, "press")["topic"] == f"{prefix}/press"
        topic = f"{prefix}/press"
        mosquitto_pub(system_broker, topic, json.dumps({"id": "a", "seq": 0, "value": 0.5}))
        pair = [{"seq": i, "value": i / 2} for i in (1, 2)]
        mosquitto_pub(system_broker, topic, json.dumps(pair))
        mosquitto_pub(system_broker, topic, "{not json")
        mosquitto_pub(system_broker, f"{prefix}/nobody", json.dumps({"seq": 9, "value": 1.0}))
        pub = publisher(system_broker)
        try:
            readings = [{"id": f"p{i}", "seq": i, "value": i * 1.5} for i in range(3, 40)]
            publish_all(pub, topic, [json.dumps(r) for r in readings])
            # duplicates: the same id again, and the same id-less payload twice
            publish_all(pub, topic, [json.dumps({"id": "p3", "seq": 3, "value": 4.5})])
            same = json.dumps({"seq": 40, "value": 60.0})
            publish_all(pub, topic, [same, same, json.dumps({"seq": "x", "value": 1.0})])
        finally:
            pub.loop_stop()
            pub.disconnect()
        wait_for(lambda: stream(api, "press")["dead_letters"] == 2, "two dead letters")
        wait_for(lambda: stream(api, "press")["readings"] == 41, "41 distinct readings")
        dead = api.get("/v1/streams/press/dead-letters").json()["data"]
        reasons = sorted(d["reason"] for d in dead)
        assert reasons[0].startswith("column 'seq' must be an integer")
        assert reasons[1].startswith("not JSON")
        assert all(d["source"] == "mqtt" for d in dead)
        # a topic of no stream is kept, not dropped: under that name's dead letters
        nobody = service.streams.store.dead_letters("nobody", offset=0, limit=5)[1]
        assert nobody == 1

        [version] = api.post("/v1/streams/press/seal").json()["data"]
        assert sorted(sealed_seqs(api, "press")) == list(range(41))
        body = {"dataset": version["hash"], "algorithm": "linear_regression", "target": "value"}
        model = api.post("/v1/models", json={**body, "test_size": 0}).json()
        assert model["metadata"]["stream"]["readings"] == 41
        report = api.get(f"/v1/verify/models/{model['model_hash']}").json()
        assert report["verdict"] == "valid", report


def test_the_service_reconnects_and_resubscribes_after_a_broker_restart(
    tmp_path: Path, private_broker: MosquittoBroker
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", anchor_interval=3600, mqtt_url=private_broker.url
    )
    topic = f"{settings.mqtt_topic_prefix}/line"
    with authorized_client(settings) as api:
        create(api, "line")
        ingest = api.app.state.service.mqtt  # type: ignore[attr-defined]
        assert ingest.connected.wait(TIMEOUT)
        mosquitto_pub(private_broker.port, topic, json.dumps({"seq": 1, "value": 1.0}))
        wait_for(lambda: stream(api, "line")["readings"] == 1, "the first reading")
        private_broker.stop()
        wait_for(lambda: not ingest.connected.is_set(), "the service to notice")
        private_broker.start()  # a new broker process: it knows no session, no subscription
        assert ingest.connected.wait(TIMEOUT)
        wait_for(
            lambda: (
                mosquitto_pub(private_broker.port, topic, json.dumps({"seq": 2, "value": 2.0}))
                or stream(api, "line")["readings"] == 2
            ),
            "a reading published after the restart",
        )
        assert stream(api, "line")["readings"] == 2


class _Senders:
    """Readings sent over MQTT (paho, QoS 1) and HTTP while the service may be killed; each
    keeps the seq numbers whose acknowledgement it received (PUBACK from the broker, or 202)."""

    def __init__(self, broker: MosquittoBroker, server: ServiceProcess, topic: str) -> None:
        self.broker, self.server, self.topic = broker, server, topic
        self.mqtt_acked: list[int] = []
        self.http_acked: list[int] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._mqtt, daemon=True),
            threading.Thread(target=self._http, daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=TIMEOUT)

    def _mqtt(self) -> None:
        client = publisher(self.broker.port)
        try:
            seq = 0
            while not self._stop.is_set() and seq < 3_000:
                batch = range(seq, seq + 20)
                infos = [
                    client.publish(self.topic, json.dumps({"seq": s, "value": s / 3}), qos=1)
                    for s in batch
                ]
                for info in infos:
                    info.wait_for_publish(timeout=TIMEOUT)
                self.mqtt_acked.extend(batch)
                seq += 20
        finally:
            client.loop_stop()
            client.disconnect()

    def _http(self) -> None:
        seq = 1_000_000
        with self.server.client(timeout=30) as http:
            while not self._stop.is_set():
                batch = [{"id": f"h{s}", "seq": s, "value": 0.5} for s in range(seq, seq + 10)]
                try:
                    response = http.post("/v1/streams/crash/readings", json=batch)
                except httpx.TransportError:
                    return  # the server is gone: this answer never reached us
                assert response.status_code == 202, response.text
                self.http_acked.extend(b["seq"] for b in batch)
                seq += 10


def _mqtt_workers(pid: int) -> list[int]:
    """The MQTT worker processes among the children of process ``pid``."""
    children = [
        child
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]
    return [
        int(child)
        for child in children
        if b"api.streaming.mqtt_worker" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def test_kill_9_between_acknowledgement_and_seal_loses_nothing(
    tmp_path: Path, private_broker: MosquittoBroker
) -> None:
    data = tmp_path / "data"
    env = {
        "PROVENANCE_MQTT_URL": private_broker.url,
        "PROVENANCE_ANCHOR_INTERVAL": "3600",
        "PROVENANCE_MQTT_WORKERS": "2",  # both stop with the service
    }
    topic = "provenance/streams/crash"
    with ServiceProcess(data, env=env, start_timeout=TIMEOUT) as server:
        with server.client() as http:
            create(http, "crash", seal_readings=700, seal_seconds=3600)
            wait_for(lambda: stream(http, "crash")["readings"] == 0, "the stream")
        time.sleep(1.0)  # the subscription is in place before anything is published
        senders = _Senders(private_broker, server, topic)
        senders.start()
        with server.client() as http:
            wait_for(lambda: stream(http, "crash")["versions"] >= 1, "a first seal")
        workers = _mqtt_workers(server.pid)
        assert len(workers) == 2
        assert server.stop(kill=True) == -signal.SIGKILL  # readings and seals in flight
        # their input closed with the service: they stop (after their commit), never orphaned
        wait_for(
            lambda: not any(Path(f"/proc/{w}").exists() for w in workers),
            "the MQTT workers to stop",
        )
    senders.stop()
    assert senders.http_acked and senders.mqtt_acked
    # A second crash, right after a seal was planned and before it was registered:
    store = StreamStore(data / "streams.sqlite3")
    planned = store.plan("crash", 700)
    store.close()
    assert planned is not None and planned.state == "planned"
    with ServiceProcess(data, env=env, start_timeout=TIMEOUT) as server, server.client() as http:
        expected = set(senders.mqtt_acked) | set(senders.http_acked)
        wait_for(
            lambda: stream(http, "crash")["readings"] >= len(expected),
            "every acknowledged reading, redelivered ones included",
        )
        response = http.post("/v1/streams/crash/seal")
        assert response.status_code == 200, response.text
        versions = http.get("/v1/streams/crash/versions?limit=100").json()["data"]
        assert planned.number in [v["number"] for v in versions]
        seqs = sealed_seqs(http, "crash")
        assert len(seqs) == len(set(seqs)), "a reading is in the version twice"
        assert expected <= set(seqs), sorted(expected - set(seqs))[:10]

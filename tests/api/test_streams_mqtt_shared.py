"""MQTT ingest over several connections sharing one subscription, and seals before ingest
(issue 27; ``api/service/mqtt_ingest.py``), against a private Mosquitto broker.

* The connections share ``$share/<client id>/<prefix>/+``: the broker spreads the messages over
  them (each connection has its own window of unacknowledged messages), and over the worker
  processes that hold them; every message is stored once, and none is delivered twice: an
  earlier single-connection run's plain subscription is dropped, after what its session held
  was delivered.
* ``Streams.behind`` says when the sealer is past the bound (not while a seal fails), and the
  MQTT worker takes no message while it is.
* A reading SQLite cannot store (a lone surrogate) is a dead letter; the readings after it
  arrive.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.devbroker import MosquittoBroker, mosquitto_binary
from api.service import mqtt_ingest
from api.settings import Settings
from tests.api.conftest import authorized_client
from tests.api.test_streams_mqtt import (
    TIMEOUT,
    create,
    publish_all,
    publisher,
    stream,
    wait_for,
)


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    if mosquitto_binary() is None or shutil.which("mosquitto_pub") is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto mosquitto-clients)")
    with MosquittoBroker(tmp_path / "broker") as broker:
        yield broker


def _reading(seq: int) -> str:
    return json.dumps({"seq": seq, "value": seq / 2})


def _publish(broker: MosquittoBroker, topic: str, payloads: list[str]) -> None:
    """Publish at QoS 1 with a plain paho client, each acknowledged by the broker."""
    sender = publisher(broker.port)
    try:
        publish_all(sender, topic, payloads)
    finally:
        sender.disconnect()
        sender.loop_stop()


def test_connections_share_the_subscription_and_drain_an_earlier_single_session(
    tmp_path: Path, private_broker: MosquittoBroker
) -> None:
    base = {"data_dir": tmp_path / "data", "anchor_interval": 3600, "mqtt_url": private_broker.url}
    with authorized_client(Settings(**base, mqtt_connections=1)) as api:
        create(api, "line")
        ingest = api.app.state.service.mqtt  # type: ignore[attr-defined]
        assert ingest.connected.wait(TIMEOUT)
        assert not ingest.topic.startswith("$share/")
    topic = f"{Settings(**base).mqtt_topic_prefix}/line"
    sender = publisher(private_broker.port)
    try:
        # queued by the broker for the single connection's persistent session
        publish_all(sender, topic, [_reading(i) for i in range(40)])
        # three connections over two worker processes: 0 and 2 in one, 1 in the other
        with authorized_client(Settings(**base, mqtt_connections=3, mqtt_workers=2)) as api:
            ingest = api.app.state.service.mqtt  # type: ignore[attr-defined]
            assert ingest.topic.startswith("$share/")
            assert ingest.connected.wait(TIMEOUT)
            wait_for(lambda: stream(api, "line")["readings"] == 40, "the earlier session's 40")
            publish_all(sender, topic, [_reading(i) for i in range(40, 340)])
            wait_for(lambda: stream(api, "line")["readings"] == 340, "all 340 readings")
            time.sleep(0.5)  # a second delivery, had there been one, would have arrived
            assert stream(api, "line")["readings"] == 340
            assert sum(ingest.delivered) == 340, ingest.delivered  # none delivered twice
            assert sum(1 for count in ingest.delivered if count) >= 2, ingest.delivered
            first, second, third = ingest.delivered
            assert first + third and second, "both workers took messages"
    finally:
        sender.disconnect()
        sender.loop_stop()


def test_the_sealer_is_behind_past_the_bound_until_it_catches_up(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", anchor_interval=3600)
    with authorized_client(settings) as api:
        create(api, "line", seal_readings=10)
        streams = api.app.state.service.streams  # type: ignore[attr-defined]
        body = [{"seq": i, "value": i / 2} for i in range(100)]
        with streams.sealer.lock("line"):  # the sealer cannot seal meanwhile
            assert api.post("/v1/streams/line/readings", json=body).status_code == 202
            # 100 waiting, bound max(5, 2 * 10) = 20
            assert streams.behind(5) and not streams.behind(100)
            streams.sealer.errors["line"] = "the chain is away"  # a failing sealer: no wait
            assert not streams.behind(5)
            del streams.sealer.errors["line"]
        wait_for(lambda: not streams.behind(5), "the sealer to catch up")
        assert stream(api, "line")["pending"] <= 20
        wait_for(lambda: stream(api, "line")["pending"] == 0, "every reading sealed")
        assert stream(api, "line")["versions"] == 10


def test_the_worker_pauses_while_the_sealer_is_behind(
    tmp_path: Path, private_broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service tells the MQTT worker to pause past the bound: the messages wait on the
    broker, unacknowledged, until the sealer catches up."""
    monkeypatch.setattr(mqtt_ingest, "_UNSEALED", 5)  # bound max(5, 2 * 10) = 20
    settings = Settings(
        data_dir=tmp_path / "data", anchor_interval=3600, mqtt_url=private_broker.url
    )
    with authorized_client(settings) as api:
        create(api, "line", seal_readings=10)
        service = api.app.state.service  # type: ignore[attr-defined]
        assert service.mqtt.connected.wait(TIMEOUT)
        with service.streams.sealer.lock("line"):
            body = [{"seq": -i, "value": 0.0} for i in range(1, 101)]
            assert api.post("/v1/streams/line/readings", json=body).status_code == 202
            assert service.streams.behind(5)
            wait_for(service.mqtt.paused.is_set, "the worker to pause")
            topic = f"{settings.mqtt_topic_prefix}/line"
            _publish(private_broker, topic, [_reading(i) for i in range(300)])
            time.sleep(1.0)
            assert stream(api, "line")["readings"] == 100  # none taken
        wait_for(lambda: stream(api, "line")["readings"] == 400, "the 300 once it caught up")
        assert not service.mqtt.paused.is_set()


def test_a_killed_worker_is_started_again_and_loses_nothing(
    tmp_path: Path, private_broker: MosquittoBroker
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        anchor_interval=3600,
        mqtt_url=private_broker.url,
        mqtt_workers=2,
    )
    with authorized_client(settings) as api:
        create(api, "line")
        ingest = api.app.state.service.mqtt  # type: ignore[attr-defined]
        assert ingest.connected.wait(TIMEOUT)
        first, other = ingest.worker_pids
        os.kill(first, signal.SIGKILL)
        topic = f"{settings.mqtt_topic_prefix}/line"
        # published while that worker is gone: the broker keeps its connections' share for the
        # session, and the other worker takes the rest
        _publish(private_broker, topic, [_reading(i) for i in range(50)])
        wait_for(lambda: ingest.worker_pids[0] not in (first, None), "a new worker")
        assert ingest.worker_pids[1] == other
        wait_for(lambda: stream(api, "line")["readings"] == 50, "the 50 readings")


def test_a_reading_sqlite_cannot_store_is_a_dead_letter_not_a_stuck_writer(
    tmp_path: Path, private_broker: MosquittoBroker
) -> None:
    """A lone surrogate passes JSON (``"\\ud800"``) but is not text SQLite can store: it failed
    the writer's whole transaction, which was retried forever, so no later reading arrived."""
    settings = Settings(
        data_dir=tmp_path / "data", anchor_interval=3600, mqtt_url=private_broker.url
    )
    with authorized_client(settings) as api:
        create(api, "line")
        ingest = api.app.state.service.mqtt  # type: ignore[attr-defined]
        assert ingest.connected.wait(TIMEOUT)
        topic = f"{settings.mqtt_topic_prefix}/line"
        poison = json.dumps({"id": "\ud800", "seq": 0, "value": 0.0})
        _publish(private_broker, topic, [poison, *(_reading(i) for i in range(1, 30))])
        wait_for(lambda: stream(api, "line")["readings"] == 29, "the 29 good readings")
        [dead] = api.get("/v1/streams/line/dead-letters").json()["data"]
        assert "lone surrogate" in dead["reason"] and dead["source"] == "mqtt"


def test_the_worker_imports_nothing_of_the_service() -> None:
    """The worker starts in well under a second because ``api.streaming`` stays below
    ``api.service`` (which pulls in web3 and FastAPI: seconds at start-up)."""
    script = (
        "import sys, api.streaming.mqtt_worker\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('web3', 'fastapi', 'eth_abi')"
        " or m.startswith('api.service'))\n"
        "print(heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stdout

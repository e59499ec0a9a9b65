"""The MQTT worker's paho client (``api.streaming.mqtt_worker.client_class``: paho 2.2.0 with
three of its private methods overridden), against a private Mosquitto broker: messages arrive
through :class:`BufferedSocket` and reach ``on_message`` whatever their topic, and
``ack_all`` acknowledges them, so a session that comes back is sent none again, where a
session that did not acknowledge is sent every one again.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from api.devbroker import MosquittoBroker, mosquitto_binary
from api.streaming.mqtt_worker import BufferedSocket, client_class
from tests.api.test_streams_mqtt import TIMEOUT, publish_all, publisher, wait_for

TOPIC = "plant/line"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    with MosquittoBroker(tmp_path / "broker") as running:
        yield running


class _Session:
    """A persistent session (``clean_session=False``) of the worker's client class, QoS 1,
    acknowledging by hand: what it received, in order."""

    def __init__(self, broker: MosquittoBroker, client_id: str) -> None:
        self.messages: list[Any] = []
        subscribed = threading.Event()
        self.client = client_class(mqtt)(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            manual_ack=True,
        )
        self.client.on_connect = lambda c, *_: c.subscribe(f"{TOPIC}/+", qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = lambda _c, _u, message: self.messages.append(message)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert subscribed.wait(TIMEOUT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _publish(broker: MosquittoBroker, count: int) -> list[bytes]:
    payloads = [f'{{"seq": {i}}}' for i in range(count)]
    sender = publisher(broker.port)
    try:
        for k, topic in enumerate((f"{TOPIC}/a", f"{TOPIC}/b")):
            publish_all(sender, topic, payloads[k::2])
    finally:
        sender.disconnect()
    return sorted(p.encode() for p in payloads)


@pytest.mark.parametrize("acknowledged", [True, False])
def test_ack_all_acknowledges_every_message_it_names(
    broker: MosquittoBroker, acknowledged: bool
) -> None:
    client_id = f"worker-{uuid.uuid4().hex[:8]}"
    first = _Session(broker, client_id)
    sent = _publish(broker, 16)  # within the broker's window of unacknowledged messages (20)
    wait_for(lambda: len(first.messages) == 16, "the 16 messages")
    assert sorted(m.payload for m in first.messages) == sent  # from both topics
    assert isinstance(first.client.socket(), BufferedSocket)
    if acknowledged:
        first.client.ack_all([m.mid for m in first.messages])
        first.client.ack_all([])  # nothing to say: nothing sent
    # the broker has the acknowledgements before the connection ends (a PINGREQ after them)
    pong = threading.Event()
    first.client.on_log = lambda _c, _u, _level, text: "PINGRESP" in text and pong.set()
    first.client._send_pingreq()
    assert pong.wait(TIMEOUT)
    first.close()
    again = _Session(broker, client_id)
    try:
        if acknowledged:
            marker = _publish(broker, 1)  # delivered after anything the session still held
            wait_for(lambda: len(again.messages) >= 1, "the marker")
            assert [m.payload for m in again.messages] == marker
        else:
            wait_for(lambda: len(again.messages) == 16, "every message again")
            assert sorted(m.payload for m in again.messages) == sent
    finally:
        again.close()

"""The MQTT worker's paho client (``api.streaming.mqtt_client.client_class``: paho 2.2.0 with
three of its private methods overridden), against a private Mosquitto broker: messages arrive
through :class:`BufferedSocket` and reach ``on_message`` whatever their topic, and
``ack_all`` acknowledges them, so a session that comes back is sent none again, where a
session that did not acknowledge is sent every one again.
"""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from api.devbroker import MosquittoBroker, mosquitto_binary
from api.streaming.mqtt_client import BufferedSocket, client_class
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

    def __init__(self, port: int, client_id: str) -> None:
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
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(TIMEOUT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _publish(port: int, count: int) -> list[bytes]:
    payloads = [f'{{"seq": {i}}}' for i in range(count)]
    sender = publisher(port)
    try:
        for k, topic in enumerate((f"{TOPIC}/a", f"{TOPIC}/b")):
            publish_all(sender, topic, payloads[k::2])
    finally:
        sender.disconnect()
    return sorted(p.encode() for p in payloads)


def _scenario(port: int, acknowledged: bool) -> dict[str, Any]:
    """A session receives 16 messages (within the broker's window of unacknowledged messages,
    20) from two topics, acknowledges them or not, and comes back: what it was sent each time.

    Run in a fresh interpreter: paho waits in ``select()``, which cannot take a descriptor past
    1,024, and by this test the test runner's process may hold more (the client then never got
    its CONNACK; the MQTT worker is a process of its own, with a few)."""
    client_id = f"worker-{uuid.uuid4().hex[:8]}"
    first = _Session(port, client_id)
    sent = _publish(port, 16)
    wait_for(lambda: len(first.messages) == 16, "the 16 messages")
    buffered = isinstance(first.client.socket(), BufferedSocket)
    received = sorted(m.payload for m in first.messages)
    if acknowledged:
        first.client.ack_all([m.mid for m in first.messages])
        first.client.ack_all([])  # nothing to say: nothing sent
    # the broker has the acknowledgements before the connection ends (a PINGREQ after them)
    pong = threading.Event()
    first.client.on_log = lambda _c, _u, _level, text: "PINGRESP" in text and pong.set()
    first.client._send_pingreq()
    assert pong.wait(TIMEOUT)
    first.close()
    again = _Session(port, client_id)
    try:
        marker = _publish(port, 1) if acknowledged else []
        wait_for(lambda: len(again.messages) >= (1 if acknowledged else 16), "messages again")
        return {
            "sent": sent,
            "received": received,
            "buffered": buffered,
            "marker": marker,
            "again": [m.payload for m in again.messages],
        }
    finally:
        again.close()


@pytest.mark.parametrize("acknowledged", [True, False])
def test_ack_all_acknowledges_every_message_it_names(
    broker: MosquittoBroker, acknowledged: bool
) -> None:
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as fresh:
        seen = fresh.submit(_scenario, broker.port, acknowledged).result(timeout=4 * TIMEOUT)
    assert seen["received"] == seen["sent"]  # from both topics
    assert seen["buffered"]
    if acknowledged:
        assert seen["again"] == seen["marker"]  # delivered after anything the session held
    else:
        assert sorted(seen["again"]) == seen["sent"]  # every one again

"""Readings over MQTT: a paho client subscribed to ``<mqtt_topic_prefix>/+`` at QoS 1.

Why it is built this way:

* **Acknowledged only once durable.** The client runs with ``manual_ack=True``: paho's network
  thread only queues each message (waiting when :data:`_QUEUED` are queued: memory stays
  bounded whatever the broker holds); a writer thread takes what has arrived (up to
  :data:`_BATCH` messages), stores every reading and dead letter of them in one SQLite
  transaction (:meth:`Streams.ingest_messages`) and only then sends each PUBACK. A crash before
  the commit leaves the messages unacknowledged, and the broker delivers them again.
* **Stored once.** A redelivered message must not be stored twice, and MQTT says nothing that
  identifies a message across deliveries. So a reading without an ``id`` gets one from its
  content: ``mqtt:`` + SHA-256 of (topic, payload, place in the message). The price, written
  down: two messages with the same payload on the same topic are one reading unless they carry
  ids (or, as sensor readings do, their own timestamp column).
* **A persistent session** (``clean_session=False`` and a client id stable across restarts,
  derived from the data directory unless ``mqtt_client_id`` is set): the broker keeps QoS 1
  messages for the service while it is down or reconnecting (within the broker's own
  ``max_queued_messages``, which operators should raise for bursts). paho reconnects by itself
  (backing off from 0.1 s to 5 s) and :meth:`_on_connect` subscribes again on every connection.
* **MQTT 3.1.1, not 5** (measured for issue 27). An MQTT 5 client may state its own window of
  unacknowledged messages in CONNECT (Receive Maximum), and Mosquitto 2.0 honours it whatever
  its ``max_inflight_messages`` (``src/property_broker.c``, ``property__process_connect``). But
  paho builds a ``Properties`` object for every PUBLISH it receives over MQTT 5 (~20 us here),
  and in paired runs (BENCHMARKS.md, issue 27 fourth session) the service spent 3x the CPU
  per reading over MQTT 5 with one reading a message and 1.3x with ten, while the window of
  4 x 20 messages was not what bounded the rate (the seals were, with ten a message; paho
  itself, with one).
* **Several connections, one shared subscription** (``mqtt_connections``, 4 by default). The
  broker lets each connection hold only so many unacknowledged QoS 1 messages (Mosquitto's
  ``max_inflight_messages``, 20), and the service acknowledges a message only after the commit
  that holds it, so with one connection a commit carried at most 20 messages and the commits
  bounded the rate (issue 27). Each connection subscribes to ``$share/<client id>/<prefix>/+``
  (an MQTT shared subscription, which Mosquitto serves to 3.1.1 clients too): the broker hands
  each message to one of them, each with its own window, and the one writer stores what all of
  them received in one commit, then acknowledges each message on the connection it came from.
  Connection 0 keeps the single-connection client id and drops the plain subscription an
  earlier run made, so what that session held is delivered, not left on the broker. (Going
  back to fewer connections leaves the other connections' sessions, and what the broker
  queues for them, on the broker.)
* Nothing is dropped silently: a message on an unknown stream's topic, a payload that is not
  JSON or not readings, goes to that stream name's dead letters with its reason.
* **Seals before ingest.** While more than ``_UNSEALED`` readings wait for a seal and the
  sealer is making progress, the writer waits for it (:meth:`Streams.wait_for_seals`): the
  messages wait on the broker, unacknowledged, rather than as an unsealed backlog here.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import ssl
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from api.errors import Misconfigured
from api.service._stream_rows import MessageReadings, message_readings
from api.service.streams import Streams
from api.settings import Settings

__all__ = ["MqttIngest", "broker_address"]

log = logging.getLogger("provenance.mqtt")
_BATCH = 5_000  # messages stored in one transaction at most
# Readings stored in one transaction at most (give or take a message): the transaction holds
# the store's write lock, which the sealer waits for (50,000 readings held it ~0.2 s).
_BATCH_READINGS = 5_000
# Messages received and not yet stored, at most: past it paho's network thread waits, so TCP
# pushes back on the broker. (Mosquitto may send a client more than its max_inflight_messages;
# without this bound a slow disk turned a backlog on the broker into gigabytes here.)
_QUEUED = 10_000
# Readings waiting for a seal past which the writer lets the sealer catch up first.
_UNSEALED = 50_000


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
    """The service's MQTT subscriber (see the module docstring)."""

    def __init__(self, settings: Settings, streams: Streams) -> None:
        import paho.mqtt.client as mqtt  # lazily: the service runs without MQTT too

        assert settings.mqtt_url is not None
        self._streams = streams
        self._prefix = settings.mqtt_topic_prefix
        self._address = broker_address(settings.mqtt_url)
        # (connection, message) pairs received and not yet stored
        self._queue: queue.Queue[tuple[Any, Any]] = queue.Queue(maxsize=_QUEUED)
        self._stop = threading.Event()
        self.connected = threading.Event()  # every connection up and subscribed
        self._up: set[int] = set()
        self._up_lock = threading.Lock()
        client_id = settings.mqtt_client_id or (
            "provenance-"
            + hashlib.sha256(str(settings.data_dir.resolve()).encode()).hexdigest()[:16]
        )
        # A share name may not hold "/", "+" or "#" (a client id may)
        self._group = client_id.translate(str.maketrans("/+#", "___"))
        # Messages each connection received (each counts its own, on its own thread).
        self.delivered = [0] * settings.mqtt_connections
        self._clients = [
            self._new_client(mqtt, client_id if k == 0 else f"{client_id}-{k}", k)
            for k in range(settings.mqtt_connections)
        ]
        self._writer = threading.Thread(target=self._write_loop, name="mqtt-writer", daemon=True)

    def _new_client(self, mqtt: Any, client_id: str, index: int) -> Any:
        client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
            userdata=index,
        )
        if self._address.username is not None:
            client.username_pw_set(self._address.username, self._address.password)
        if self._address.tls:
            client.tls_set_context(ssl.create_default_context())
        client.reconnect_delay_set(min_delay=0.1, max_delay=5)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    @property
    def topic(self) -> str:
        """The topic subscribed to: shared by the connections when there are several."""
        plain = f"{self._prefix}/+"
        return plain if len(self._clients) == 1 else f"$share/{self._group}/{plain}"

    def start(self) -> None:
        self._writer.start()
        for client in self._clients:
            client.connect_async(self._address.host, self._address.port, keepalive=30)
            client.loop_start()

    def close(self) -> None:
        """Stop taking messages; those received and not yet stored stay unacknowledged, so
        the broker delivers them again to the next run."""
        self._stop.set()
        for client in self._clients:
            client.disconnect()
        for client in self._clients:
            client.loop_stop()
        self._writer.join(timeout=30)

    # -- paho's threads (one per connection) ---------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT broker refused the connection: %s", reason)
            return
        plain = f"{self._prefix}/+"
        if self.topic != plain:  # an earlier single-connection run's subscription, if any
            client.unsubscribe(plain)
        client.subscribe(self.topic, qos=1)
        with self._up_lock:
            self._up.add(userdata)
            if len(self._up) == len(self._clients):
                self.connected.set()
        log.info("MQTT connected to %s:%d, subscribed to %s",
                 self._address.host, self._address.port, self.topic)  # fmt: skip

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        with self._up_lock:
            self._up.discard(userdata)
            self.connected.clear()
        if not self._stop.is_set():
            log.warning("MQTT connection lost (%s); reconnecting", reason)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.delivered[userdata] += 1
        while not self._stop.is_set():  # on stop it is dropped: unacknowledged, sent again
            try:
                self._queue.put((client, message), timeout=0.5)
                return
            except queue.Full:
                continue

    # -- the writer ----------------------------------------------------------------------------

    def _write_loop(self) -> None:
        while not self._stop.is_set():
            # Seals first: past the bound, let the sealer catch up (it says when it cannot).
            self._streams.wait_for_seals(_UNSEALED, self._stop)
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            batch, groups = [first], {}
            readings = self._decode(first, groups)
            while len(batch) < _BATCH and readings < _BATCH_READINGS:
                try:
                    taken = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(taken)
                readings += self._decode(taken, groups)
            delay = 0.5
            while True:
                try:
                    self._streams.ingest_messages(groups, source="mqtt")
                    break
                except Exception:  # a full disk, say: kept, unacknowledged, and tried again
                    # (the broker would only send them again after a reconnect, and meanwhile
                    # they hold its window of messages in flight)
                    log.exception("storing %d MQTT messages failed; retrying", len(batch))
                    if self._stop.wait(delay):
                        return  # not acknowledged: the broker delivers them to the next run
                    delay = min(delay * 2, 10.0)
            for client, message in batch:
                client.ack(message.mid, message.qos)

    def _decode(self, taken: tuple[Any, Any], groups: dict[str, list[MessageReadings]]) -> int:
        """Parse a message into its stream's group; answers how many readings it holds."""
        message = taken[1]
        topic = message.topic
        decoded = message_readings(topic, message.payload)
        groups.setdefault(topic[len(self._prefix) + 1 :], []).append(decoded)
        return len(decoded.readings)

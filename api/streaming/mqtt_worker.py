"""The MQTT worker: a process of its own (``python -m api.streaming.mqtt_worker``) that
subscribes to ``<prefix>/+`` at QoS 1, stores every reading and dead letter in
``streams.sqlite3`` and only then acknowledges each message. The service starts, feeds and
stops it (:mod:`api.service.mqtt_ingest`, whose docstring says why it is a process).

Its conversation with the service, one JSON document a line:

* stdin: first the configuration (:class:`WorkerConfig`'s fields), then ``"pause"`` or ``"go"``
  whenever the service's sealer falls behind or catches up. End of input (the service closed
  it, or died, even by kill -9) stops the worker: the messages it holds and has not stored stay
  unacknowledged, and the broker delivers them again.
* stdout: ``{"connected": bool}`` when every connection it opens is up and subscribed, or one
  is lost; ``{"stored": {stream: readings added}, "delivered": [messages per connection it
  opens]}`` after each commit; ``{"paused": bool}`` once the writer has stopped storing on a
  pause (no commit is under way, none starts until ``"go"``), and when it goes on.

Why it is built this way:

* **Acknowledged only once durable.** The clients run with ``manual_ack=True``: paho's network
  threads only queue each message (:class:`_Inbox`, waiting when :data:`_QUEUED` are queued:
  memory stays bounded whatever the broker holds); the writer thread takes what has arrived (up
  to :data:`_BATCH_READINGS` readings), stores every reading and dead letter of them in one
  SQLite transaction (:meth:`StreamIngest.store_messages`) and only then sends the PUBACKs, one
  write a connection. A crash before the commit leaves the messages unacknowledged, and the
  broker delivers them again.
* **Stored once.** A redelivered message must not be stored twice, and MQTT says nothing that
  identifies a message across deliveries. So a reading without an ``id`` gets one from its
  content: ``mqtt:`` + SHA-256 of (topic, payload, place in the message). The price, written
  down: two messages with the same payload on the same topic are one reading unless they carry
  ids (or, as sensor readings do, their own timestamp column).
* **A persistent session** (``clean_session=False`` and a client id stable across restarts):
  the broker keeps QoS 1 messages for the service while it is down or reconnecting (within the
  broker's own ``max_queued_messages``, which operators should raise for bursts). paho
  reconnects by itself (backing off from 0.1 s to 5 s) and :meth:`_on_connect` subscribes again
  on every connection.
* **MQTT 3.1.1, not 5** (measured for issue 27). An MQTT 5 client may state its own window of
  unacknowledged messages in CONNECT (Receive Maximum), and Mosquitto 2.0 honours it whatever
  its ``max_inflight_messages`` (``src/property_broker.c``, ``property__process_connect``). But
  paho builds a ``Properties`` object for every PUBLISH it receives over MQTT 5 (~20 us here),
  and in paired runs (BENCHMARKS.md, issue 27 fourth session) the service spent 3x the CPU
  per reading over MQTT 5 with one reading a message and 1.3x with ten, while the window of
  4 x 20 messages was not what bounded the rate.
* **Several connections, one shared subscription** (``connections``, 4 by default). The broker
  lets each connection hold only so many unacknowledged QoS 1 messages (Mosquitto's
  ``max_inflight_messages``, 20), and a message is acknowledged only after the commit that
  holds it, so with one connection a commit carried at most 20 messages and the commits bounded
  the rate (issue 27). Each connection subscribes to ``$share/<client id>/<prefix>/+`` (an MQTT
  shared subscription, which Mosquitto serves to 3.1.1 clients too): the broker hands each
  message to one of them, each with its own window, and the one writer stores what all of them
  received in one commit, then acknowledges each message on the connection it came from.
  Connection 0 keeps the single-connection client id and drops the plain subscription an
  earlier run made, so what that session held is delivered, not left on the broker. (Going
  back to fewer connections leaves the other connections' sessions, and what the broker queues
  for them, on the broker.)
* **paho as the worker uses it** (:mod:`api.streaming.mqtt_client`): reading a burst at once,
  every message straight to ``on_message``, a commit's acknowledgements in one write.
* Nothing is dropped silently: a message on an unknown stream's topic, a payload that is not
  JSON or not readings, goes to that stream name's dead letters with its reason.
"""

from __future__ import annotations

import gc
import json
import logging
import signal
import ssl
import sys
import threading
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from api.streaming.ingest import StreamIngest
from api.streaming.mqtt_client import client_class
from api.streaming.rows import MessageReadings
from api.streaming.store import StreamStore

__all__ = ["WorkerConfig", "collect_less", "main", "subscription"]

log = logging.getLogger("provenance.mqtt")
# Readings stored in one transaction at most (give or take a message). Fewer transactions
# cost the writer less a reading, but each holds the store's write lock, which the sealer
# waits for: in paired runs (BENCHMARKS.md, issue 27, sixteenth session) 10,000 ingested 15%
# faster than 5,000 on average, and 20,000 a quarter slower than 10,000 (the sealer fell
# behind and paused the worker).
_BATCH_READINGS = 10_000
# Messages received and not yet stored, at most: past it paho's network thread waits, so TCP
# pushes back on the broker. (Mosquitto may send a client more than its max_inflight_messages;
# without this bound a slow disk turned a backlog on the broker into gigabytes here.)
_QUEUED = 10_000


class _Inbox:
    """Messages received and not yet stored, from paho's network threads to the writer: a deque
    of at most ``bound`` (past it a network thread waits, so TCP pushes back on the broker).

    Not a ``queue.Queue``: that hands over one message at a time, and while it is full (as it
    is while a backlog drains) each message the writer took woke a network thread to put one
    more, a hand-over of the interpreter lock a message. Here a network thread that finds it
    full waits until the writer has taken a whole batch (:meth:`made_room`)."""

    def __init__(self, bound: int, stop: threading.Event) -> None:
        self._items: deque[tuple[Any, Any]] = deque()
        self._bound = bound
        self._stop = stop
        self._arrived = threading.Event()  # set when something was put since the last wait
        self._room = threading.Event()  # cleared by a network thread that found it full
        self._room.set()

    def put(self, item: tuple[Any, Any]) -> None:
        """Add ``item``, waiting while ``bound`` are held; dropped once stopping."""
        while len(self._items) >= self._bound:
            self._room.clear()
            if len(self._items) < self._bound:  # taken meanwhile (clear, then look)
                break
            if self._stop.is_set():
                return
            self._room.wait(0.5)
        self._items.append(item)
        if not self._arrived.is_set():
            self._arrived.set()

    def wait(self, timeout: float) -> bool:
        """Whether something is held, waiting up to ``timeout`` seconds for it."""
        if self._items:
            return True
        self._arrived.clear()
        return bool(self._items) or self._arrived.wait(timeout)  # (clear, then look)

    def take(self) -> tuple[Any, Any] | None:
        """The oldest item, or None when none is held (the writer's thread only)."""
        try:
            return self._items.popleft()
        except IndexError:
            return None

    def made_room(self) -> None:
        """The writer took a batch: network threads waiting for room go on."""
        if not self._room.is_set():
            self._room.set()


@dataclass(frozen=True)
class WorkerConfig:
    """What the worker needs of the service's settings (sent as its first line of input)."""

    store: str  # the path of streams.sqlite3
    max_chars: int  # a string value's longest (the service's max_field_chars)
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    client_id: str
    prefix: str
    connections: int  # connections sharing the subscription, over every worker
    serves: list[int]  # the ones this worker opens (their numbers, 0 to connections - 1)

    def line(self) -> str:
        return json.dumps(asdict(self)) + "\n"


def subscription(prefix: str, client_id: str, connections: int) -> str:
    """The topic subscribed to: shared by the connections when there are several (a share name
    may not hold ``/``, ``+`` or ``#``; a client id may)."""
    plain = f"{prefix}/+"
    if connections == 1:
        return plain
    return f"$share/{client_id.translate(str.maketrans('/+#', '___'))}/{plain}"


class _Worker:
    def __init__(self, config: WorkerConfig, out: TextIO) -> None:
        import paho.mqtt.client as mqtt  # lazily: the service runs without MQTT too

        self._config = config
        self._out = out
        self._out_lock = threading.Lock()
        self._ingest = StreamIngest(StreamStore(Path(config.store)), max_chars=config.max_chars)
        self._topic = subscription(config.prefix, config.client_id, config.connections)
        self.stop = threading.Event()
        # (connection, message) pairs received and not yet stored
        self._inbox = _Inbox(_QUEUED, self.stop)
        self.go = threading.Event()  # cleared while the service's sealer is behind
        self.go.set()
        self._up: set[int] = set()
        self._up_lock = threading.Lock()
        # Messages each of its connections received (each counts its own, on its own thread).
        self._delivered = [0] * len(config.serves)
        self._clients = [
            self._new_client(mqtt, config.client_id if k == 0 else f"{config.client_id}-{k}", i)
            for i, k in enumerate(config.serves)
        ]

    def _new_client(self, mqtt: Any, client_id: str, index: int) -> Any:
        client = client_class(mqtt)(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
            userdata=index,
        )
        if self._config.username is not None:
            client.username_pw_set(self._config.username, self._config.password)
        if self._config.tls:
            client.tls_set_context(ssl.create_default_context())
        client.reconnect_delay_set(min_delay=0.1, max_delay=5)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _say(self, document: dict[str, Any]) -> None:
        with self._out_lock:
            self._out.write(json.dumps(document) + "\n")
            self._out.flush()

    def run(self) -> None:
        """Connect, then store and acknowledge until :attr:`stop` is set; then disconnect."""
        writer = threading.Thread(target=self._write_loop, name="mqtt-writer", daemon=True)
        writer.start()
        for client in self._clients:
            client.connect_async(self._config.host, self._config.port, keepalive=30)
            client.loop_start()
        self.stop.wait()
        for client in self._clients:
            client.disconnect()
        for client in self._clients:
            client.loop_stop()
        writer.join(timeout=30)
        self._ingest.store.close()

    # -- paho's threads (one per connection) ---------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT broker refused the connection: %s", reason)
            return
        plain = f"{self._config.prefix}/+"
        if self._topic != plain:  # an earlier single-connection run's subscription, if any
            client.unsubscribe(plain)
        client.subscribe(self._topic, qos=1)

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, reasons: Any, props: Any) -> None:
        """Up once the broker has the subscription (its SUBACK): what is published from then
        on is kept for this session, even should the worker die before it is delivered."""
        if any(reason.is_failure for reason in reasons):
            log.warning("MQTT broker refused the subscription to %s: %s", self._topic, reasons)
            return
        with self._up_lock:
            self._up.add(userdata)
            if len(self._up) == len(self._clients):
                self._say({"connected": True})
        log.info("MQTT connected to %s:%d, subscribed to %s",
                 self._config.host, self._config.port, self._topic)  # fmt: skip

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        with self._up_lock:
            self._up.discard(userdata)
            self._say({"connected": False})
        if not self.stop.is_set():
            log.warning("MQTT connection lost (%s); reconnecting", reason)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self._delivered[userdata] += 1
        self._inbox.put((client, message))  # on stop it is dropped: unacknowledged, sent again

    # -- the writer ----------------------------------------------------------------------------

    def _write_loop(self) -> None:
        paused = False
        while not self.stop.is_set():
            if not self.go.is_set():  # the sealer is behind: the messages wait on the broker
                if not paused:
                    paused = True
                    self._say({"paused": True})  # nothing more is stored until go
                self.go.wait(0.2)
                continue
            if paused:
                paused = False
                self._say({"paused": False})
            if not self._inbox.wait(0.2) or not self.go.is_set():  # (paused meanwhile)
                continue
            batch: list[tuple[Any, Any]] = []
            groups: dict[str, list[MessageReadings]] = {}
            readings = 0
            while readings < _BATCH_READINGS and (taken := self._inbox.take()) is not None:
                batch.append(taken)
                readings += self._decode(taken, groups)
            self._inbox.made_room()
            delay = 0.5
            while True:
                try:
                    added = self._ingest.store_messages(groups, source="mqtt")
                    break
                except Exception:  # a full disk, say: kept, unacknowledged, and tried again
                    # (the broker would only send them again after a reconnect, and meanwhile
                    # they hold its window of messages in flight)
                    log.exception("storing %d MQTT messages failed; retrying", len(batch))
                    if self.stop.wait(delay):
                        return  # not acknowledged: the broker delivers them to the next run
                    delay = min(delay * 2, 10.0)
            acks: dict[Any, list[int]] = {}
            for client, message in batch:
                if message.qos == 1:  # (QoS 0 asks for none; QoS 1 is the subscription's most)
                    acks.setdefault(client, []).append(message.mid)
            for client, mids in acks.items():
                client.ack_all(mids)
            self._say({"stored": added, "delivered": list(self._delivered)})

    def _decode(self, taken: tuple[Any, Any], groups: dict[str, list[MessageReadings]]) -> int:
        """Check a message into its stream's group; answers how many readings it holds."""
        message = taken[1]
        topic = message.topic
        name = topic[len(self._config.prefix) + 1 :]
        decoded = self._ingest.decode(name, topic, message.payload)
        groups.setdefault(name, []).append(decoded)
        return decoded.count


def _listen(worker: _Worker, source: TextIO) -> None:
    """The service's word on stdin: pause, go, or (end of input) stop."""
    for line in source:
        word = json.loads(line)
        if word == "pause":
            worker.go.clear()
        elif word == "go":
            worker.go.set()
    worker.stop.set()
    worker.go.set()


def collect_less() -> None:
    """Run Python's cycle collector less often. It runs every 700 objects made and not yet
    freed, and the worker makes a dict a reading (and frees it, by reference counting, soon
    after): in ``python -m bench.streams_steps``, parsing and encoding 300,000 readings ran it
    nearly 800 times. Everything made up to now lives as long as the process
    (:func:`gc.freeze` takes it out of the collector's sight), and the youngest generation is
    collected every 50,000 objects (BENCHMARKS.md, thirteenth session, has what it saves)."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def main() -> None:
    # Ctrl-C reaches the whole process group: the service stops the worker itself (by closing
    # its input), after the requests in flight.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    first = sys.stdin.readline()
    if not first:
        return
    worker = _Worker(WorkerConfig(**json.loads(first)), sys.stdout)
    collect_less()
    threading.Thread(target=_listen, args=(worker, sys.stdin), name="listen", daemon=True).start()
    worker.run()


if __name__ == "__main__":
    main()

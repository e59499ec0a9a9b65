"""Sensor readings over MQTT (issue 27): readings/s the service ingests, next to a plain paho
subscriber that only counts the same messages, both in one run on one private broker; the
service's memory over the run; seal latency.

How (the same for both sides, so the ratio compares consumers, not publishers):

1. a subscriber with a persistent session (``clean_session=False``) subscribes at QoS 1 to the
   topic, then goes away;
2. a plain paho publisher publishes N messages at QoS 1, one reading each
   (``{"id", "seq", "value"}``) or an array of them, which the broker queues for that session
   (``max_queued_messages 0``; ``max_inflight_messages`` is Mosquitto's default, 20);
3. the subscriber comes back and drains the queue: the rate is N over the time from its first
   to its last message (``--warm``: the service stays up, settled, its MQTT workers stopped
   while the backlog is published, and drains it when they go on: its start-up, the training
   pool's import of scikit-learn included, is then not inside the drain). The plain
   subscriber acknowledges each message on receipt (paho's automatic PUBACK) and counts it; the
   service (``provenance serve``, stream sealing every 10,000 readings) acknowledges each only
   after its transaction committed, checks, stores and seals. Its times are the readings' own
   arrival stamps in ``streams.sqlite3``.

The plain subscriber runs twice, as MQTT 3.1.1 and as MQTT 5 with a Receive Maximum of 65,535
(the broker then sends it up to that many unacknowledged messages instead of its
``max_inflight_messages``); the faster of the two is the baseline, whichever protocol the
service speaks.

The service's RSS (``/proc/PID/status`` VmRSS) is sampled every 0.5 s while it drains, and its
CPU time (user + system, ``/proc/PID/stat``, its child processes included) from the moment it
answers until the drain ends and until every reading is sealed: CPU per reading is less
sensitive to a loaded machine than a rate. The MQTT workers' share is shown apart, and so is the
training pool's: its workers start with the service and import scikit-learn while the drain
runs (a cost of the start, not of a reading, which a short run spreads over few readings).
The seal latency is each chunk's registration time (planned → chunk and version on chain).

Run: ``python -m bench --only streams`` (N = 200,000 at one reading a message, 1,000,000 at ten;
``--quick``: 5,000, one a message, only to show it runs), or
``python -m bench.bench_streams --readings 10000000`` for the long memory run (about N/20,000 s,
and the broker holds the N queued messages in memory: ~300 bytes each).
``--service-pythonpath DIR`` runs the service from another tree (``git archive`` of a base
commit) with this harness: paired runs, base against branch.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt

from api.devbroker import MosquittoBroker
from api.devserver import ServiceProcess
from bench._common import Config, fmt, print_table, write_results

__all__ = ["run"]

TOPIC_PREFIX = "bench/streams"
STREAM = "meters"
SEAL_READINGS = int(os.environ.get("BENCH_SEAL_READINGS", "10000"))


def _lines(path: Path, n: int, per_message: int) -> Path:
    """``n`` readings, ``per_message`` to a message (one object, or an array of them)."""
    with open(path, "w") as out:
        for start in range(0, n, per_message):
            batch = [
                {"id": f"r{i}", "seq": i, "value": i / 3}
                for i in range(start, min(start + per_message, n))
            ]
            out.write(json.dumps(batch[0] if per_message == 1 else batch) + "\n")
    return path


def _publish(broker: MosquittoBroker, lines: Path) -> float:
    """Publish every line at QoS 1 with a plain paho client and wait for every PUBACK (the
    broker then holds them). ``mosquitto_pub -l`` is not used: in Mosquitto 2.0.11 it exits at
    the end of its input with messages still unsent (a third of 100,000 arrived)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex}")
    client.max_inflight_messages_set(1000)
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    assert connected.wait(30)
    t0 = time.perf_counter()
    try:
        topic = f"{TOPIC_PREFIX}/{STREAM}"
        infos: list[Any] = []
        with open(lines, "rb") as source:
            for line in source:
                infos.append(client.publish(topic, line.rstrip(b"\n"), qos=1))
                if len(infos) == 20_000:  # message ids wrap at 65,535: wait in windows
                    _acknowledged(infos)
        _acknowledged(infos)
        return time.perf_counter() - t0
    finally:
        client.disconnect()
        client.loop_stop()


def _acknowledged(infos: list[Any]) -> None:
    for info in infos:
        info.wait_for_publish(timeout=600)
        if not info.is_published():
            raise RuntimeError("the broker did not acknowledge every message")
    infos.clear()


def _plain(broker: MosquittoBroker, lines: Path, n: int, protocol: int = mqtt.MQTTv311) -> float:
    """Messages/s (``n`` messages) of a paho subscriber that only counts (see the module
    docstring), as MQTT 3.1.1 or as MQTT 5 with a Receive Maximum of 65,535."""
    client_id = f"plain-{uuid.uuid4().hex[:8]}"
    subscribed = threading.Event()
    v5 = protocol == mqtt.MQTTv5
    properties = None
    if v5:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        properties.ReceiveMaximum = 65_535

    def session() -> mqtt.Client:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            **({} if v5 else {"clean_session": False}),
        )
        client.on_connect = lambda c, *_: c.subscribe(f"{TOPIC_PREFIX}/{STREAM}", qos=1)
        client.on_subscribe = lambda *_: subscribed.set()
        return client

    def connect(client: mqtt.Client) -> None:
        if v5:
            client.connect("127.0.0.1", broker.port, clean_start=False, properties=properties)
        else:
            client.connect("127.0.0.1", broker.port)

    first = session()
    connect(first)
    first.loop_start()
    assert subscribed.wait(30)
    first.disconnect()
    first.loop_stop()
    _publish(broker, lines)
    times: list[float] = []
    done = threading.Event()

    def on_message(*_: Any) -> None:
        times.append(time.perf_counter())
        if len(times) >= n:
            done.set()

    second = session()
    second.on_message = on_message
    connect(second)
    second.loop_start()
    assert done.wait(max(120, n / 1000)), f"{len(times)} of {n} messages"
    second.disconnect()
    second.loop_stop()
    return (n - 1) / (times[-1] - times[0])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of process ``pid`` and of its children that are running
    (the service's MQTT workers and training pool)."""
    return sum(_own_and_children(pid))


def _children(pid: int) -> list[tuple[int, bool]]:
    """The running child processes of ``pid``: each one's id and whether it is an MQTT worker
    (the rest: the training pool's workers, which start with the service and import
    scikit-learn while the drain runs)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for child in (task / "children").read_text().split():
                command = Path(f"/proc/{child}/cmdline").read_bytes()
                found.append((int(child), b"api.streaming.mqtt_worker" in command))
        except OSError:  # the thread or the child ended meanwhile
            continue
    return found


def _own_and_children(pid: int) -> tuple[float, float, float]:
    """User + system CPU time so far of process ``pid``, of its running MQTT workers and of its
    other running children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    workers = others = 0.0
    for child, is_worker in _children(pid):
        try:
            cpu = _cpu_seconds(child)
        except OSError:  # it ended meanwhile
            continue
        if is_worker:
            workers += cpu
        else:
            others += cpu
    return own, workers, others


def _mqtt_workers(pid: int) -> list[int]:
    return [child for child, is_worker in _children(pid) if is_worker]


def _settled(pid: int, timeout: float = 120) -> None:
    """Wait until the service and its children use under 10% of a core over a second (the
    training pool's workers have started)."""
    deadline = time.monotonic() + timeout
    before = _cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = _cpu_seconds(pid)
        if now - before < 0.1:
            return
        before = now
    raise RuntimeError("the service did not settle")


def _service(
    broker: MosquittoBroker,
    lines: Path,
    n: int,
    work: Path,
    pythonpath: Path | None = None,
    *,
    warm: bool = False,
) -> dict[str, Any]:
    """The service's side: started again on the backlog the broker holds (its start-up, the
    training pool's included, runs while it drains), or with ``warm`` already running and
    settled, its MQTT workers stopped (SIGSTOP) while the backlog is published and let go
    (SIGCONT) to drain it (the broker drops a connection silent for 45 s: up to ~2,000,000
    readings)."""
    data = work / f"service-{uuid.uuid4().hex[:8]}"
    env = {
        "PROVENANCE_MQTT_URL": broker.url,
        "PROVENANCE_MQTT_TOPIC_PREFIX": TOPIC_PREFIX,
        "PROVENANCE_ANCHOR_INTERVAL": "3600",
    }
    if pythonpath is not None:
        # and not the current folder, which ``python -m`` would put first (a checkout there
        # would be run instead)
        env.update(PYTHONPATH=str(pythonpath), PYTHONSAFEPATH="1")
    with ServiceProcess(data, env=env) as server, server.client() as http:
        body = {
            "name": STREAM,
            "columns": [{"name": "seq", "type": "integer"}, {"name": "value", "type": "float"}],
            "seal_readings": SEAL_READINGS,
            "seal_seconds": 3600,
        }
        assert http.post("/v1/streams", json=body).status_code == 201
        time.sleep(1.5)  # subscribed (a persistent session: the broker keeps it)
        if warm:
            _settled(server.pid)
            stopped = _mqtt_workers(server.pid)
            for worker in stopped:
                os.kill(worker, signal.SIGSTOP)
            try:
                _publish(broker, lines)
            except BaseException:
                for worker in stopped:
                    os.kill(worker, signal.SIGCONT)
                raise
            drained = _drain(server, http, n, lambda: [os.kill(w, signal.SIGCONT) for w in stopped])
    if not warm:
        _publish(broker, lines)
        with ServiceProcess(data, env=env) as server, server.client() as http:
            drained = _drain(server, http, n, lambda: None)
    with sqlite3.connect(data / "streams.sqlite3") as db:
        first, last = db.execute(
            "SELECT min(received_at), max(received_at) FROM readings"
        ).fetchone()
        seals = [
            row[0]
            for row in db.execute(
                "SELECT sealed_at - planned_at FROM chunks WHERE state = 'sealed' ORDER BY number"
            )
        ]
    return {"rate": (n - 1) / max((last - first) / 1000, 1e-3), "seal_seconds": seals, **drained}


def _drain(server: ServiceProcess, http: httpx.Client, n: int, go: Any) -> dict[str, Any]:
    """Watch the service drain ``n`` readings (``go()`` once its CPU time is taken), then seal
    what is left: its memory and CPU, the backlog of unsealed readings."""
    samples: list[float] = []
    curve: list[tuple[int, float]] = []  # (readings stored, RSS MB)
    waiting: list[tuple[int, int]] = []  # (readings stored, readings not sealed yet)
    start = _own_and_children(server.pid)
    go()
    deadline = time.monotonic() + max(300, n / 500)
    while time.monotonic() < deadline:
        samples.append(_rss_mb(server.pid))
        figures = http.get(f"/v1/streams/{STREAM}").json()
        curve.append((figures["readings"], samples[-1]))
        waiting.append((figures["readings"], figures["pending"]))
        if figures["readings"] >= n:
            break
        time.sleep(0.5)
    assert figures["readings"] == n, figures
    drained = _own_and_children(server.pid)
    sealed = http.post(f"/v1/streams/{STREAM}/seal").json()["count"]
    cpu_sealed = _cpu_seconds(server.pid)
    samples.append(_rss_mb(server.pid))
    own, workers, others = (after - before for before, after in zip(start, drained, strict=True))
    return {
        "rss_mb": samples,
        "rss_by_readings": curve,
        "unsealed_by_readings": waiting,
        "sealed_at_end": sealed,
        "cpu_us_per_reading_drain": (own + workers + others) / n * 1e6,
        "cpu_us_per_reading_sealed": (cpu_sealed - sum(start)) / n * 1e6,
        "worker_cpu_us_per_reading_drain": workers / n * 1e6,
        "others_cpu_us_per_reading_drain": others / n * 1e6,
    }


def measure(
    n: int,
    work: Path,
    per_message: int = 1,
    inflight: int = 20,
    *,
    publisher: bool = True,
    baseline: bool = True,
    pythonpath: Path | None = None,
    warm: bool = False,
) -> dict[str, Any]:
    lines = _lines(work / f"lines-{per_message}.jsonl", n, per_message)
    messages = -(-n // per_message)
    with MosquittoBroker(work / f"broker-{per_message}", inflight=inflight) as broker:
        # no subscriber: the publisher's own speed (skipped by --quick)
        publish_s = _publish(broker, lines) if publisher else float("nan")
        plain = {
            name: _plain(broker, lines, messages, protocol) * per_message
            if baseline
            else float("nan")
            for name, protocol in (("3.1.1", mqtt.MQTTv311), ("5", mqtt.MQTTv5))
        }
        service = _service(broker, lines, n, work, pythonpath, warm=warm)
    return {
        "readings": n,
        "per_message": per_message,
        "max_inflight_messages": inflight,
        "publisher_rate": n / publish_s,
        "plain_rate": max(plain.values()),
        "plain_rates": plain,
        "service_pythonpath": str(pythonpath) if pythonpath else None,
        "warm": warm,
        **service,
    }


def _tables(result: dict[str, Any]) -> list[str]:
    rss = result["rss_mb"]
    seals = sorted(result["seal_seconds"])
    ratio = result["rate"] / result["plain_rate"]
    service = "service: stored, acknowledged after commit, sealed every 10,000"
    if result.get("warm"):
        service += ", warm"
    if result.get("service_pythonpath"):
        service += f" (code from {result['service_pythonpath']})"
    rows = [
        [service, fmt(result["rate"]), f"{ratio:.2f}x"],
        *[[f"plain paho subscriber that only counts, MQTT {version}",
           fmt(rate), f"{rate / result['plain_rate']:.2f}x"]
          for version, rate in result["plain_rates"].items()],
        ["the paho publisher alone, to the broker (its own pace)",
         fmt(result["publisher_rate"]), ""],
        ["service CPU per reading, from its start to the end of the drain (us)",
         fmt(result["cpu_us_per_reading_drain"]), ""],
        ["of which the MQTT workers (us)",
         fmt(result.get("worker_cpu_us_per_reading_drain", float("nan"))), ""],
        ["of which the training pool's workers, starting (us)",
         fmt(result.get("others_cpu_us_per_reading_drain", float("nan"))), ""],
        ["service CPU per reading, to every reading sealed (us)",
         fmt(result["cpu_us_per_reading_sealed"]), ""],
    ]  # fmt: skip
    quarter = max(len(rss) // 4, 1)
    curve = result.get("rss_by_readings") or []
    tenths = [curve[min(len(curve) - 1, i * len(curve) // 10)] for i in range(10)] if curve else []
    memory = [
        *[[f"at {r:,} readings", fmt(mb)] for r, mb in tenths],
        ["first quarter of the drain", fmt(statistics.median(rss[:quarter]))],
        ["last quarter of the drain", fmt(statistics.median(rss[-quarter:]))],
        ["peak", fmt(max(rss))],
    ]
    waiting = result.get("unsealed_by_readings") or []
    latency = [
        ["seals", str(len(seals))],
        [
            "most readings waiting for a seal during the drain",
            f"{max((w for _, w in waiting), default=0):,}",
        ],
        ["median", fmt(statistics.median(seals)) if seals else "-"],
        ["p95", fmt(seals[int(0.95 * (len(seals) - 1))]) if seals else "-"],
        ["max", fmt(max(seals)) if seals else "-"],
    ]
    n = f"{result['readings']:,}"
    return [
        print_table(
            f"Readings/s over MQTT, {n} readings, {result['per_message']} to a message, QoS 1, "
            f"broker max_inflight_messages {result['max_inflight_messages']}",
            ["consumer", "readings/s", "ratio"],
            rows,
        ),
        print_table(f"Service RSS (MB) while it ingests {n} readings", ["when", "MB"], memory),
        print_table("Seal latency (s): chunk and version registered", ["", "s"], latency),
    ]


def run(config: Config) -> list[dict[str, Any]]:
    results, tables, headline = [], [], []
    for per_message in config.pick((1,), (1, 10)):
        # Ten a message, 1,000,000 readings: a drain of 200,000 lasted about two seconds, in
        # which the service's start (the training pool importing scikit-learn) and its first
        # seals weighed half (BENCHMARKS.md, thirteenth session); a longer one measures the
        # rate it keeps
        n = config.pick(5_000, 200_000 if per_message == 1 else 1_000_000, smoke=1_000)
        with tempfile.TemporaryDirectory(dir=config.tmp) as tmp:
            result = measure(n, Path(tmp), per_message, publisher=not config.quick)
        results.append(result)
        tables += _tables(result)
        ratio = result["rate"] / result["plain_rate"]
        headline.append(
            {
                "benchmark": "streams",
                "figure": f"MQTT readings/s, {per_message} a message, seals every "
                f"{SEAL_READINGS:,} ({n:,} readings)",
                "measured": fmt(result["rate"]),
                "baseline": f"{fmt(result['plain_rate'])} plain paho subscriber",
                "ratio": f"{ratio:.2f}",
                "target": ">= 0.5x and >= 20,000/s",
                "met": ratio >= 0.5 and result["rate"] >= 20_000,
            }
        )
    write_results("streams", {"runs": results}, tables)
    return headline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--per-message", type=int, default=1)
    parser.add_argument("--inflight", type=int, default=20, help="broker max_inflight_messages")
    parser.add_argument(
        "--service-only", action="store_true", help="no baseline (the long memory run)"
    )
    parser.add_argument(
        "--warm",
        action="store_true",
        help="the service already running and settled when it drains (not started on it)",
    )
    parser.add_argument("--tmp", type=Path, default=None)
    parser.add_argument(
        "--service-pythonpath",
        type=Path,
        default=None,
        help="run the service from this tree (PYTHONPATH), e.g. a git archive of the base",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        result = measure(
            args.readings,
            Path(tmp),
            args.per_message,
            args.inflight,
            publisher=not args.service_only,
            baseline=not args.service_only,
            pythonpath=args.service_pythonpath,
            warm=args.warm,
        )
    name = f"streams-{args.readings}-{args.per_message}" + ("-warm" if args.warm else "")
    write_results(name, result, _tables(result))


if __name__ == "__main__":
    try:
        main()
    except httpx.HTTPError as exc:
        raise SystemExit(f"the service stopped answering: {exc}") from None

"""The MQTT worker's inbox (``api.streaming.mqtt_worker._Inbox``), between paho's network
threads and the writer: bounded, in order, a full inbox holds its network thread until the
writer has taken a batch, and a stop drops what could not be put (unacknowledged: the broker
sends it again)."""

from __future__ import annotations

import threading
import time

from api.streaming.mqtt_worker import _Inbox


def test_items_come_out_in_order_and_wait_says_when_one_is_there() -> None:
    inbox = _Inbox(10, threading.Event())
    assert not inbox.wait(0.01) and inbox.take() is None
    later = threading.Timer(0.05, inbox.put, args=(("c", 1),))
    later.start()
    assert inbox.wait(5)  # woken by the put
    inbox.put(("c", 2))
    assert [inbox.take(), inbox.take(), inbox.take()] == [("c", 1), ("c", 2), None]


def test_a_full_inbox_holds_the_network_thread_until_the_writer_made_room() -> None:
    inbox = _Inbox(3, threading.Event())
    for k in range(3):
        inbox.put(("c", k))
    put = threading.Thread(target=inbox.put, args=(("c", 3),))
    put.start()
    time.sleep(0.2)
    assert put.is_alive()  # held: three are in
    assert inbox.take() == ("c", 0)
    inbox.made_room()
    put.join(5)
    assert not put.is_alive()
    assert [inbox.take() for _ in range(4)] == [("c", 1), ("c", 2), ("c", 3), None]


def test_a_stop_lets_a_held_network_thread_go_without_its_message() -> None:
    stop = threading.Event()
    inbox = _Inbox(1, stop)
    inbox.put(("c", 0))
    put = threading.Thread(target=inbox.put, args=(("c", 1),))
    put.start()
    time.sleep(0.1)
    stop.set()
    put.join(5)
    assert not put.is_alive()
    assert [inbox.take(), inbox.take()] == [("c", 0), None]

"""paho's MQTT client as the MQTT worker (:mod:`api.streaming.mqtt_worker`) uses it: paho
2.2.0, pinned, with three of its private methods overridden (``tests/api/test_mqtt_client.py``
checks them on a real broker).

* **One read a burst, not three system calls a message.** paho reads a packet's first byte, its
  length and its body with a ``recv`` each; in the worker each one gave up the interpreter
  lock and waited to take it back from the writer (issue 27: ``_sock_recv`` was a fifth of the
  worker's samples). :class:`BufferedSocket` reads up to 64 KiB at once and hands paho the
  bytes it asks for; its ``pending()`` (the hook paho's loop has for TLS sockets) makes paho
  read the next packet without waiting in ``select``.
* **Every message straight to ``on_message``**, and **a commit's acknowledgements in one
  write**: see :func:`client_class`.
"""

from __future__ import annotations

import functools
import struct
from typing import Any

__all__ = ["BufferedSocket", "client_class"]

_READ = 65_536  # bytes read from the broker's socket at once, at most


class BufferedSocket:
    """A socket that reads what has arrived in one system call and hands it out in the pieces
    asked for: paho's ``SocketLike`` (``recv``, ``send``, ``close``, ``fileno``,
    ``setblocking``) plus the ``pending()`` its loop asks TLS sockets for."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._data = b""
        self._at = 0

    def recv(self, size: int) -> bytes:
        if self._at == len(self._data):
            data = self._sock.recv(max(size, _READ))  # raises as the socket does (no data yet)
            if len(data) <= size:
                return data  # all of it, or b"" at the end of the stream
            self._data, self._at = data, 0
        piece = self._data[self._at : self._at + size]
        self._at += len(piece)
        return piece

    def pending(self) -> int:
        """Bytes read and not handed out yet (and any a TLS socket holds decrypted)."""
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._data) - self._at + inner

    def send(self, data: bytes | bytearray) -> int:
        return int(self._sock.send(data))

    def close(self) -> None:
        self._sock.close()

    def fileno(self) -> int:
        return int(self._sock.fileno())

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)


@functools.cache
def client_class(mqtt: Any) -> Any:
    """paho's client class as the worker uses it (paho 2.2.0, pinned: what is overridden below
    is paho's own, private, and checked by ``tests/api/test_mqtt_client.py``)."""

    class Client(mqtt.Client):  # type: ignore[misc,name-defined]
        def _create_socket(self) -> Any:
            """Where paho makes the socket it then only uses as a ``SocketLike``: read it
            through :class:`BufferedSocket`."""
            return BufferedSocket(super()._create_socket())

        def _handle_on_message(self, message: Any) -> None:
            """Hand every message to :attr:`on_message`: the worker adds no per-topic callbacks,
            and paho's match of each message's topic against them was 5% of the worker's
            interpreter time (issue 27)."""
            self.on_message(self, self._userdata, message)

        def ack_all(self, mids: list[int]) -> None:
            """Acknowledge QoS 1 messages (``ack(mid, 1)`` of each) in one write: each
            ``ack`` wakes paho's network thread and sends its four bytes by a system call of
            its own. The bytes are the same: a PUBACK (``0x40``, length 2, the message id)
            after another."""
            if mids:
                packets = b"".join(_PUBACK.pack(0x40, 2, mid) for mid in mids)
                self._packet_queue(0x40, packets, 0, 1)

    return Client


_PUBACK = struct.Struct("!BBH")

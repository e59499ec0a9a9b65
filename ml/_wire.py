"""The framing between the service and its training processes: a JSON header plus raw blobs.

Private. A message is a 4-byte big-endian header length, the header as JSON, then the blobs
whose lengths the header lists under ``"blobs"``. No pickle crosses the pipe: a training
process reads model files an attacker may have written, so what it sends back is parsed as
data only (an error travels as its class name, message and plain attributes, rebuilt by
:func:`error_from_json` into the :mod:`ml.errors` class of that name, and nothing else).
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from collections.abc import Sequence
from typing import Any, BinaryIO

import ml.errors as errors

__all__ = ["WireClosed", "WireTimeout", "error_from_json", "error_to_json", "read", "write"]

_LENGTH = struct.Struct(">I")
_MAX_HEADER = 16 << 20


class WireClosed(Exception):
    """The other end closed the pipe (it exited or was killed)."""


class WireTimeout(Exception):
    """No whole message arrived before the deadline."""


def write(stream: BinaryIO, header: dict[str, Any], blobs: Sequence[bytes] = ()) -> None:
    """Send one message and flush it."""
    encoded = json.dumps({**header, "blobs": [len(b) for b in blobs]}).encode()
    stream.write(_LENGTH.pack(len(encoded)) + encoded)
    for blob in blobs:
        stream.write(blob)
    stream.flush()


def read(fd: int, deadline: float | None = None) -> tuple[dict[str, Any], list[bytes]]:
    """Receive one message from the file descriptor ``fd`` (raises :class:`WireTimeout` past
    ``deadline``, a :func:`time.monotonic` value, and :class:`WireClosed` at end of file)."""
    (size,) = _LENGTH.unpack(_read_exact(fd, _LENGTH.size, deadline))
    if size > _MAX_HEADER:
        raise WireClosed(f"a header of {size} bytes is not ours")
    header = json.loads(_read_exact(fd, size, deadline))
    blobs = [_read_exact(fd, int(n), deadline) for n in header.pop("blobs", [])]
    return header, blobs


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    # poll, not select: a long-lived service may hold more than select's 1,024 descriptors.
    ready = select.poll()
    ready.register(fd, select.POLLIN)
    while remaining:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not ready.poll(wait * 1000):
                raise WireTimeout
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise WireClosed("end of file")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


_PLAIN = (str, int, float, bool, type(None))


def error_to_json(exc: errors.MlError) -> dict[str, Any]:
    """An :class:`~ml.errors.MlError` as plain data: class name, message, plain attributes."""
    attributes = {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in vars(exc).items()
        if isinstance(value, _PLAIN) or (isinstance(value, tuple | list) and len(value) < 1000)
    }
    return {"class": type(exc).__name__, "message": str(exc), "attributes": attributes}


def error_from_json(data: dict[str, Any]) -> errors.MlError:
    """The error :func:`error_to_json` described, as an instance of the same class (only
    classes of :mod:`ml.errors` are built; anything else becomes a ``TrainingFailed``)."""
    message = str(data.get("message", "the training failed"))
    cls = getattr(errors, str(data.get("class")), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.MlError)):
        return errors.TrainingFailed(message)
    exc = cls.__new__(cls)
    errors.MlError.__init__(exc, message)
    for name, value in (data.get("attributes") or {}).items():
        if name != "message":
            setattr(exc, name, tuple(value) if isinstance(value, list) else value)
    return exc

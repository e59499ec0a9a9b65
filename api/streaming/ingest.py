"""Readings checked and stored: what the service's HTTP ingest and the MQTT worker process both
do with readings that arrived (:class:`StreamIngest`).

An MQTT message for a stream whose columns are all numbers or booleans is checked and encoded
whole first (:meth:`StreamIngest.decode`, :class:`api.streaming.message_rows.MessageEncoder`),
and reading by reading only when some reading of it would be refused or written otherwise.

A reading that is not one (not JSON, wrong type, missing or unknown column) goes to its
stream's dead letters with its reason, in the same transaction as the good ones, and never keeps
them from being stored; readings for a stream that does not exist are that name's dead letters.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from api.streaming.message_rows import MessageEncoder
from api.streaming.rows import (
    MessageReadings,
    ReadingRefused,
    RowEncoder,
    message_key,
    message_readings,
    stream_columns,
)
from api.streaming.store import StreamRow, StreamStore, now_ms

__all__ = ["Checked", "StreamIngest"]

log = logging.getLogger("provenance.streams")

# (readings (id, received_at ms, row JSON), dead letters (received_at, source, payload, reason),
# refused (position in the items, reason))
Checked = tuple[list[tuple[str, int, str]], list[tuple[int, str, str, str]], list[tuple[int, str]]]


class StreamIngest:
    """Stream definitions (cached: a stream is defined once) and the check of readings against
    them, over one :class:`StreamStore`."""

    def __init__(self, store: StreamStore, *, max_chars: int) -> None:
        self.store = store
        self.definitions: dict[str, StreamRow] = {}
        self._max_chars = max_chars
        self._encoders: dict[str, RowEncoder] = {}
        self._message_encoders: dict[str, MessageEncoder | None] = {}

    def definition(self, name: str) -> StreamRow | None:
        """The stream named ``name``, or None (looked up again each time until it exists)."""
        row = self.definitions.get(name)
        if row is None:
            row = self.store.stream(name)
            if row is not None:
                self.definitions[name] = row
        return row

    def decode(self, name: str, topic: str, payload: bytes) -> MessageReadings:
        """An MQTT message for the stream ``name``: checked and encoded whole when its stream
        is known here and :class:`MessageEncoder` serves it and passes every reading, else
        parsed for :meth:`check` (a stream not known yet is looked up by
        :meth:`store_messages`, once a batch)."""
        if name not in self._message_encoders and name in self.definitions:
            columns = stream_columns(self.definitions[name])
            served = MessageEncoder.serves(columns)
            self._message_encoders[name] = MessageEncoder(columns) if served else None
        encoder = self._message_encoders.get(name)
        if encoder is not None:
            checked = encoder.rows(payload, lambda: message_key(topic, payload))
            if checked is not None:
                return MessageReadings("", [], checked=checked)
        return message_readings(topic, payload)

    def check(
        self,
        stream: StreamRow,
        items: Iterable[tuple[str | None, int, str | None, Any]],
        *,
        source: str,
        received: int | None = None,
    ) -> Checked:
        """Each item is ``(key, index, text as received (None: the parsed value's JSON), parsed
        JSON or the reason it is not)``; a reading without an id is named ``<key>:<index>``, or
        given a random id when ``key`` is None. Each is stamped ``received`` (default: now)."""
        encoder = self._encoders.get(stream.name)
        if encoder is None:
            encoder = self._encoders[stream.name] = RowEncoder(
                stream_columns(stream), max_chars=self._max_chars
            )
        encode = encoder.encode
        received = now_ms() if received is None else received
        good: list[tuple[str, int, str]] = []
        dead: list[tuple[int, str, str, str]] = []
        refused: list[tuple[int, str]] = []
        for position, (key, index, text, parsed) in enumerate(items):
            try:
                if isinstance(parsed, ReadingRefused):
                    raise parsed
                reading_id, row = encode(parsed)
            except ReadingRefused as exc:
                shown = text if text is not None else json.dumps(parsed)[:1000]
                dead.append((received, source, shown, str(exc)))
                refused.append((position, str(exc)))
                continue
            if reading_id is None:
                reading_id = f"{key}:{index}" if key is not None else uuid.uuid4().hex
            good.append((reading_id, received, row))
        return good, dead, refused

    def store_messages(
        self, groups: dict[str, list[MessageReadings]], *, source: str
    ) -> dict[str, int]:
        """Store the readings of MQTT messages of several streams (by stream name) in one
        transaction; answers how many readings each existing stream gained. The readings of a
        stream that does not exist are kept as dead letters under that name."""
        batches = []
        received = now_ms()
        for name, messages in groups.items():
            stream = self.definition(name)
            if stream is None:
                reason = f"no stream is named {name!r}"
                dead = [
                    (received, source, text if text is not None else json.dumps(p)[:1000], reason)
                    for _, _, text, p in _items(messages)
                ]
                log.warning("%d reading(s) for unknown stream %r kept as dead letters",
                            len(dead), name)  # fmt: skip
                batches.append((name, [], dead))
                continue
            good: list[tuple[str, int, str]] = []
            dead = []
            for message in messages:  # in order: a chunk's rows are in arrival order
                if message.checked is not None:
                    good.extend([(rid, received, row) for rid, row in message.checked])
                else:
                    more, more_dead, _ = self.check(
                        stream, _items([message]), source=source, received=received
                    )
                    good.extend(more)
                    dead.extend(more_dead)
            batches.append((name, good, dead))
        added = self.store.add_many(batches)
        return {
            name: count
            for (name, _, _), count in zip(batches, added, strict=True)
            if count and name in self.definitions
        }


def _items(messages: Iterable[MessageReadings]) -> Iterator[tuple[str, int, str | None, Any]]:
    """The parsed readings of ``messages`` as :meth:`StreamIngest.check` takes them."""
    for message in messages:
        for index, parsed in enumerate(message.readings):
            yield message.key, index, message.text, parsed

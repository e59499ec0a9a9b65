"""Readings checked and stored: what the service's HTTP ingest and the MQTT worker process both
do with readings that arrived (:class:`StreamIngest`).

A reading that is not one (not JSON, wrong type, missing or unknown column) goes to its
stream's dead letters with its reason, in the same transaction as the good ones, and never keeps
them from being stored; readings for a stream that does not exist are that name's dead letters.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from typing import Any

from api.streaming.rows import MessageReadings, ReadingRefused, RowEncoder, stream_columns
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

    def definition(self, name: str) -> StreamRow | None:
        """The stream named ``name``, or None (looked up again each time until it exists)."""
        row = self.definitions.get(name)
        if row is None:
            row = self.store.stream(name)
            if row is not None:
                self.definitions[name] = row
        return row

    def check(
        self,
        stream: StreamRow,
        items: Iterable[tuple[str | None, int, str | None, Any]],
        *,
        source: str,
    ) -> Checked:
        """Each item is ``(key, index, text as received (None: the parsed value's JSON), parsed
        JSON or the reason it is not)``; a reading without an id is named ``<key>:<index>``, or
        given a random id when ``key`` is None."""
        encoder = self._encoders.get(stream.name)
        if encoder is None:
            encoder = self._encoders[stream.name] = RowEncoder(
                stream_columns(stream), max_chars=self._max_chars
            )
        encode = encoder.encode
        received = now_ms()
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
        for name, messages in groups.items():
            items = (
                (message.key, index, message.text, parsed)
                for message in messages
                for index, parsed in enumerate(message.readings)
            )
            stream = self.definition(name)
            if stream is None:
                reason = f"no stream is named {name!r}"
                received = now_ms()
                dead = [
                    (received, source, text if text is not None else json.dumps(p)[:1000], reason)
                    for _, _, text, p in items
                ]
                log.warning("%d reading(s) for unknown stream %r kept as dead letters",
                            len(dead), name)  # fmt: skip
                batches.append((name, [], dead))
                continue
            good, dead, _ = self.check(stream, items, source=source)
            batches.append((name, good, dead))
        added = self.store.add_many(batches)
        return {
            name: count
            for (name, _, _), count in zip(batches, added, strict=True)
            if count and name in self.definitions
        }

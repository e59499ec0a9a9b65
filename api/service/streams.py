"""Streams: named series of sensor readings, ingested over HTTP (and MQTT, :mod:`api.mqtt`),
stored durably on arrival, sealed into chunks and versions (:mod:`api.service._stream_seal`),
with a proof for every sealed reading.

Ingest never blocks on the chain: a reading is acknowledged once it is committed to
``streams.sqlite3`` (:mod:`api.streaming.store`); sealing runs on its own thread or when
asked (``seal``), one stream at a time under that stream's lock
(:mod:`api.service._stream_sealer`).
A reading that is not one (not JSON, wrong type, missing or unknown column) goes to the stream's
dead letters with its reason and never keeps the others of its request from being stored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from api.errors import (
    InvalidStream,
    MalformedReadings,
    StreamExists,
    UnknownStream,
)
from api.schemas.accepted import SealAcceptedPublic
from api.schemas.streams import (
    ChunkPublic,
    DeadLetterPublic,
    DeadLettersPublic,
    IngestPublic,
    ReadingProofPublic,
    RefusedReadingPublic,
    StreamColumn,
    StreamCreate,
    StreamPublic,
    StreamsPublic,
    VersionPublic,
    VersionsPublic,
)
from api.service._core import Core, Written
from api.service._stream_proof import reading_proof
from api.service._stream_sealer import StreamSealer
from api.service.datasets import Datasets
from api.streaming.ingest import StreamIngest
from api.streaming.rows import (
    column_name_problem,
    split_body,
    stream_columns,
    stream_schema_hash,
)
from api.streaming.store import ChunkRow, StreamRow, StreamStore

__all__ = ["Streams"]

log = logging.getLogger("provenance.streams")


class _Rates:
    """Readings received per stream in the last minute, in one-second buckets (in memory: a
    rate shown on a page, not a record; it starts at 0 after a restart)."""

    def __init__(self) -> None:
        self._buckets: dict[str, deque[list[int]]] = {}
        self._lock = threading.Lock()

    def add(self, name: str, count: int) -> None:
        second = int(time.time())
        with self._lock:
            buckets = self._buckets.setdefault(name, deque())
            if buckets and buckets[-1][0] == second:
                buckets[-1][1] += count
            else:
                buckets.append([second, count])
            while buckets and buckets[0][0] <= second - 60:
                buckets.popleft()

    def rate(self, name: str) -> float:
        since = int(time.time()) - 60
        with self._lock:
            buckets = self._buckets.get(name, ())
            return sum(n for second, n in buckets if second > since) / 60.0


class Streams:
    """The streams of one data directory, their readings, seals, versions and proofs."""

    def __init__(self, core: Core, datasets: Datasets) -> None:
        self._core = core
        self._datasets = datasets
        self.store = StreamStore(core.settings.data_dir / "streams.sqlite3")
        self._ingest = StreamIngest(self.store, max_chars=core.settings.max_field_chars)
        self._defs = self._ingest.definitions
        self._rates = _Rates()
        self.sealer = StreamSealer(self.store, datasets, core.store, self._defs.get)

    # -- definitions ---------------------------------------------------------------------------

    def create(self, body: StreamCreate) -> Written[StreamPublic]:
        """Define a stream; the same definition again is answered as it stands (200), another
        one under the same name is a conflict."""
        names = [c.name for c in body.columns]
        for name in names:
            if (problem := column_name_problem(name)) is not None:
                raise InvalidStream(problem)
        if len(set(names)) != len(names):
            raise InvalidStream("column names must be unique")
        if len(names) >= self._core.settings.max_columns:
            raise InvalidStream(f"at most {self._core.settings.max_columns - 1} columns")
        row = StreamRow(
            body.name,
            [{"name": c.name, "type": c.type} for c in body.columns],
            body.seal_readings,
            float(body.seal_seconds),
            time.time(),
        )
        stored = self.store.create(row)
        same = (stored.columns, stored.seal_readings, stored.seal_seconds) == (
            row.columns, row.seal_readings, row.seal_seconds,
        )  # fmt: skip
        if not same:
            raise StreamExists(f"stream {body.name} exists with another definition")
        return Written(self.get(body.name), created=stored.created_at == row.created_at)

    def definition(self, name: str) -> StreamRow:
        """The stream's definition (cached: a stream is defined once)."""
        row = self._ingest.definition(name)
        if row is None:
            raise UnknownStream(f"no stream is named {name!r}")
        return row

    def get(self, name: str) -> StreamPublic:
        row = self.definition(name)
        counts = self.store.counts(name)
        latest, versions = self.store.versions(name, offset=0, limit=1)
        settings = self._core.settings
        return StreamPublic(
            name=name,
            columns=[StreamColumn(**c) for c in row.columns],  # type: ignore[arg-type]
            seal_readings=row.seal_readings,
            seal_seconds=row.seal_seconds,
            created_at=row.created_at,
            readings=counts["readings"],
            pending=counts["pending"],
            dead_letters=counts["dead_letters"],
            versions=versions,
            last_received=counts["last_received"],
            last_seal=latest[0].sealed_at if latest else None,
            latest_version=latest[0].version_hash if latest else None,
            rate=self._rates.rate(name),
            schema_hash=stream_schema_hash(stream_columns(row)),
            topic=f"{settings.mqtt_topic_prefix}/{name}" if settings.mqtt_url else None,
            seal_error=self.sealer.errors.get(name),
        )

    def list(self, *, offset: int, limit: int) -> StreamsPublic:
        rows, count = self.store.streams(offset=offset, limit=limit)
        return StreamsPublic(data=[self.get(r.name) for r in rows], count=count)

    # -- ingest --------------------------------------------------------------------------------

    def ingest_body(self, name: str, body: bytes) -> IngestPublic:
        """A request body of readings (a JSON array, or JSON lines), stored before it returns."""
        self.definition(name)
        items = split_body(body)
        if items is None:
            raise MalformedReadings(
                "the body is neither a JSON array nor JSON lines (UTF-8): nothing was stored"
            )
        if not items:
            raise MalformedReadings("the body holds no readings")
        return self.ingest(name, items, source="http")

    def ingest(self, name: str, items: Sequence[tuple[str, Any]], *, source: str) -> IngestPublic:
        """Check and store ``items`` (text as received, parsed JSON or the reason it is not)
        in one transaction: good readings, and the bad ones as dead letters. A reading without
        an id is given a random one."""
        stream = self.definition(name)
        good, dead, refused = self._ingest.check(
            stream, ((None, 0, text, parsed) for text, parsed in items), source=source
        )
        [added] = self.store.add_many([(name, good, dead)])
        self._wake_if_due(stream, added)
        return IngestPublic(
            accepted=added,
            duplicates=len(good) - added,
            dead_letters=len(dead),
            refused=[RefusedReadingPublic(index=i, reason=reason) for i, reason in refused],
        )

    def stored(self, counts: dict[str, int]) -> None:
        """Readings stored elsewhere (the MQTT worker process), by stream: counted in the rates
        and the sealer's bookkeeping as if ingested here."""
        for name, count in counts.items():
            if (stream := self._ingest.definition(name)) is not None:
                self._wake_if_due(stream, count)

    def _wake_if_due(self, stream: StreamRow, added: int) -> None:
        self._rates.add(stream.name, added)
        self.sealer.arrived(stream, added)

    def dead_letters(self, name: str, *, offset: int, limit: int) -> DeadLettersPublic:
        self.definition(name)
        rows, count = self.store.dead_letters(name, offset=offset, limit=limit)
        data = [
            DeadLetterPublic(
                received_at=r.received_at,
                source=r.source,  # type: ignore[arg-type]
                payload=r.payload,
                reason=r.reason,
            )
            for r in rows
        ]
        return DeadLettersPublic(data=data, count=count)

    # -- seals and versions --------------------------------------------------------------------

    def seal(self, name: str, *, wait: str = "final") -> VersionsPublic | SealAcceptedPublic:
        """Seal every waiting reading now (in chunks of at most ``seal_readings``); answers the
        versions made, none when nothing was waiting.

        ``wait`` as for any write: ``final`` (each chunk and version final), ``included``
        (each in a block), or ``accepted`` (RPC chains, where writes are journaled): the first
        chunk is planned durably and the sealer thread seals everything waiting, answered at
        once (:meth:`StreamSealer.ask`)."""
        stream = self.definition(name)
        if wait == "accepted" and self._core.writes.journal is not None:
            asked = self.sealer.ask(stream)
            if asked is None:  # nothing waiting: the empty answer of a final seal
                return VersionsPublic(data=[], count=0)
            planned, waiting = asked
            return SealAcceptedPublic(
                stream=stream.name,
                readings=planned + waiting,
                url=f"/v1/streams/{stream.name}/versions",
            )
        made: list[ChunkRow] = []
        while (chunk := self.sealer.seal_one(stream, early=wait == "included")) is not None:
            made.append(chunk)
        views = self._version_views(made)
        return VersionsPublic(data=views, count=len(views))

    def versions(self, name: str, *, offset: int, limit: int) -> VersionsPublic:
        self.definition(name)
        rows, count = self.store.versions(name, offset=offset, limit=limit)
        return VersionsPublic(data=self._version_views(rows), count=count)

    def _version_views(self, rows: Sequence[ChunkRow]) -> list[VersionPublic]:
        """The versions ``rows`` made (of one stream), from one read of the chunks up to the
        newest of them: a page of 50 versions read the stream's chunks 50 times."""
        if not rows:
            return []
        chunks = self.store.chunks(rows[0].stream, upto=max(c.number for c in rows))
        return [self._version_view(c, chunks[: c.number]) for c in rows]

    @staticmethod
    def _version_view(chunk: ChunkRow, chunks: Sequence[ChunkRow]) -> VersionPublic:
        """Version ``chunk.number``, made of ``chunks`` (its stream's first, in order)."""
        previous = chunks[-2].version_hash if len(chunks) > 1 else None
        return VersionPublic(
            number=chunk.number,
            hash=str(chunk.version_hash),
            rows_root=str(chunk.version_rows_root),
            readings=chunk.readings_total,
            previous=previous,
            chunk=ChunkPublic(
                number=chunk.number,
                hash=str(chunk.content_hash),
                rows_root=str(chunk.rows_root),
                readings=chunk.count,
                first_row=chunk.first_row,
                first_received=chunk.first_received,
                last_received=chunk.last_received,
            ),
            chunks=[str(c.content_hash) for c in chunks],
            sealed_at=float(chunk.sealed_at or 0.0),
        )

    def behind(self, bound: int) -> bool:
        """See :meth:`StreamSealer.behind` (the MQTT worker's back-pressure)."""
        return self.sealer.behind(bound)

    def start(self) -> None:
        self.sealer.start()

    def close(self) -> None:
        self.sealer.close()
        self.store.close()

    # -- proofs --------------------------------------------------------------------------------

    def proof(self, name: str, reading_id: str, version: str | None = None) -> ReadingProofPublic:
        """A sealed reading's row proof in its chunk and its chunk's place in ``version`` (the
        latest when None): both roots are the records' on-chain rows roots."""
        self.definition(name)
        return reading_proof(self.store, self._datasets, name, reading_id, version)

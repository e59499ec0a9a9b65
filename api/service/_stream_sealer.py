"""The sealer of the streams of one data directory: the thread that turns waiting readings into
chunks and versions on chain (:mod:`api.service._stream_seal`), and the bookkeeping that ingest
and the seal requests share with it.

A stream seals every ``seal_readings`` readings or once its oldest waiting reading is
``seal_seconds`` old, whichever comes first, or when asked; one stream at a time under that
stream's lock, so that a seal asked for over HTTP and the thread's never plan the same chunk.
Kept apart from :class:`api.service.streams.Streams` (definitions, ingest, views) because its
state is its own: what arrived since the last look, what is unsealed, the seals asked for on
acceptance, and why a stream's last seal failed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from api.service._stream_seal import SealedSoFar, chunk_file, register_seal
from api.service.datasets import Datasets
from api.streaming.store import ChunkRow, StreamRow, StreamStore, now_ms
from ledger.storage.artifacts import ArtifactStore

__all__ = ["StreamSealer"]

log = logging.getLogger("provenance.streams")
_TICK = 0.2  # seconds between the sealer's looks at the streams' rules


class StreamSealer:
    """Seals streams on its own thread (:meth:`start`) and on request (:meth:`seal_one`)."""

    def __init__(
        self,
        store: StreamStore,
        datasets: Datasets,
        artifacts: ArtifactStore,
        definition: Callable[[str], StreamRow | None],
    ) -> None:
        self._store = store
        self._datasets = datasets
        self._artifacts = artifacts
        self._definition = definition  # a stream's cached definition, None if not loaded
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._arrived: dict[str, int] = {}  # readings since the last seal, roughly
        # Readings stored by this run and not sealed yet, per stream (those a previous run
        # left are not counted: a low count only makes ingest wait less).
        self._unsealed: dict[str, int] = {}
        self._asked: dict[str, int] = {}  # seals asked for on acceptance, per stream (a count)
        self.errors: dict[str, str] = {}  # why a stream's last seal failed, until one works
        self._so_far: dict[str, SealedSoFar] = {}  # a stream's sealed chunks, as seals need them

    def arrived(self, stream: StreamRow, added: int) -> None:
        """Count what arrived; wake the thread when about a chunk's worth has (its own look
        at the store, every tick, decides)."""
        with self._guard:
            waiting = self._arrived[stream.name] = self._arrived.get(stream.name, 0) + added
            self._unsealed[stream.name] = self._unsealed.get(stream.name, 0) + added
        if waiting >= stream.seal_readings:
            self._wake.set()

    def behind(self, bound: int) -> bool:
        """Whether the thread is sealing (running, and no seal failing: the chain away, say)
        and some stream has more than ``bound`` readings (or two chunks' worth, if that is
        more) waiting for a seal.

        The MQTT worker stops taking messages while it is (:mod:`api.service.mqtt_ingest`), so
        that ingest cannot outrun sealing while both want the CPU: the messages then wait on
        the broker, unacknowledged, rather than unsealed readings here (issue 27: up to 870,000
        did)."""
        with self._guard:
            if self._thread is None or not self._thread.is_alive() or self.errors:
                return False
            for name, count in self._unsealed.items():
                stream = self._definition(name)
                if stream is not None and count > max(bound, 2 * stream.seal_readings):
                    return True
            return False

    def lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def ask(self, stream: StreamRow) -> tuple[int, int] | None:
        """Plan the stream's next chunk (durable: the thread finishes planned chunks at
        start-up) and ask the thread to seal everything waiting: ``(planned, waiting)``
        readings, or None when nothing waits. The readings are stored already, so a crash
        after the answer loses none (the rest are sealed by the stream's rule)."""
        with self.lock(stream.name):
            planned = self._store.plan(stream.name, stream.seal_readings)
            if planned is None:
                return None
            waiting, _ = self._store.pending(stream.name, upto=2**62)
            with self._guard:  # a new request: the thread must not drop it (see _loop)
                self._asked[stream.name] = self._asked.get(stream.name, 0) + 1
        self._wake.set()
        return planned.count, waiting

    def seal_one(self, stream: StreamRow, *, early: bool = False) -> ChunkRow | None:
        """Plan, register and mark one chunk (a planned one left by a crash first); ``early``:
        its records answered once in a block, not once final."""
        with self.lock(stream.name):
            with self._guard:
                self._arrived[stream.name] = 0
            planned = self._store.plan(stream.name, stream.seal_readings)
            if planned is None:
                return None
            data = chunk_file(self._store, stream, planned.number)
            earlier = self._sealed_so_far(stream.name, planned.number - 1)
            sealed = register_seal(
                self._datasets, self._artifacts, stream, planned, data, earlier, early=early
            )
            self._store.mark_sealed(
                planned,
                content_hash=sealed.content_hash,
                rows_root=sealed.rows_root,
                version=sealed.version_hash,
                root=sealed.version_root,
            )
            self._so_far[stream.name] = earlier.then(planned, sealed)
            log.info("sealed %s chunk %d (%d readings)", stream.name, planned.number, planned.count)
            with self._guard:
                left = self._unsealed.get(stream.name, 0) - planned.count
                self._unsealed[stream.name] = max(left, 0)
            return self._store.chunk(stream.name, planned.number)

    def _sealed_so_far(self, name: str, chunks: int) -> SealedSoFar:
        """The stream's first ``chunks`` sealed chunks: as kept since the last seal when the
        store's last of them is the version kept (one row read), else read whole."""
        kept = self._so_far.get(name)
        if kept is not None and kept.chunks == chunks:
            last = self._store.chunk(name, chunks) if chunks else None
            if (last.version_hash if last else None) == kept.previous:
                return kept
        return SealedSoFar.of(self._artifacts, self._store.chunks(name, upto=chunks))

    def _answered(self, name: str, asked: int | None) -> None:
        """A seal asked for (``wait=accepted``) is done: nothing was left to seal. A request
        that came in after ``asked`` was read planned a chunk this pass may have missed, so
        it is kept for the next pass."""
        with self._guard:
            if self._asked.get(name) == asked:
                self._asked.pop(name, None)

    def _pending_past_rule(self, stream: StreamRow) -> bool:
        count, oldest = self._store.pending(stream.name, upto=stream.seal_readings)
        if count >= stream.seal_readings:
            return True
        return count > 0 and oldest is not None and now_ms() - oldest >= stream.seal_seconds * 1000

    def start(self) -> None:
        """Start the thread: it first finishes any seal a previous run left planned."""
        self._thread = threading.Thread(target=self._loop, name="sealer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        """Each stream on its own: one that cannot seal (the chain away, its latest version
        revoked) keeps its readings, durable, and says why on its page; the others go on."""
        first, delay = True, _TICK
        while not self._stop.is_set():
            failed = False
            for stream in self._store.all_streams():
                try:
                    while not self._stop.is_set() and (
                        first or stream.name in self._asked or self._pending_past_rule(stream)
                    ):
                        with self._guard:
                            asked = self._asked.get(stream.name)
                        if self.seal_one(stream) is None:
                            self._answered(stream.name, asked)
                            break
                except Exception as exc:
                    failed = True
                    if self.errors.get(stream.name) != str(exc):
                        log.exception("sealing %s failed; retrying", stream.name)
                    self.errors[stream.name] = str(exc)
                else:
                    self.errors.pop(stream.name, None)
                if self._stop.is_set():
                    return
            first = False
            delay = min(delay * 2, 10.0) if failed else _TICK
            self._wake.wait(delay)
            self._wake.clear()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

"""Training and retraining in warm worker processes, each job bounded in time and memory.

Why: a training request names its own cost (trees, iterations, layers, rows). Run in the
service's process, one request could hold a core and grow memory until the machine gives out,
and nothing could stop it (a thread cannot be killed). Here each job runs in a process of its
own (:mod:`ml._worker`), started once and reused, so that:

* a job past ``time_limit`` seconds is killed (SIGKILL) and answered with
  :class:`~ml.errors.TrainingLimitExceeded` naming ``training_time_limit``; its worker is
  replaced;
* a job's heap is capped at ``memory_limit`` bytes above the worker's own: an allocation past
  it fails inside the worker, which answers :class:`~ml.errors.TrainingLimitExceeded` naming
  ``max_memory_bytes`` and is replaced;
* a worker that dies (a crash, the kernel's out-of-memory killer) or is stopped by
  :meth:`TrainingPool.cancel` / :meth:`TrainingPool.close` answers its caller with
  :class:`~ml.errors.TrainingInterrupted`;
* the numeric environment is fixed before numpy loads: one BLAS/OpenMP thread, and the
  OpenBLAS kernel set when ``coretype`` pins one (``OPENBLAS_CORETYPE``), so every worker of a
  pool trains alike.

At most ``size`` jobs run at once; more wait for a free worker (their time limit starts when
their job does). Workers start lazily, or all at once with :meth:`TrainingPool.warm`.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml import _wire
from ml.datasets import Limits
from ml.errors import TrainingInterrupted, TrainingLimitExceeded
from ml.hashing import from_hex, sha256_bytes

if TYPE_CHECKING:  # ml.training brings scikit-learn, which a serving process need not load
    from ml.training import TrainedModel

__all__ = ["DatasetFile", "Retrained", "TrainingPool", "shared_pool"]

_START_TIMEOUT = 120.0  # seconds for a new worker to import scikit-learn and say ready


@dataclass(frozen=True)
class DatasetFile:
    """A stored dataset a worker reads itself: its path, its expected content hash (``0x``
    hex, checked on the read) and the parsing limits."""

    path: Path
    content_hash: str
    limits: Limits

    def to_json(self) -> dict[str, Any]:
        limits = {name: getattr(self.limits, name) for name in self.limits.__dataclass_fields__}
        return {"path": str(self.path), "hash": self.content_hash, "limits": limits}


@dataclass(frozen=True)
class Retrained:
    """A retrain's verdict (``identical``, ``equivalent`` or ``different``), its sentence, and
    the retrained model."""

    verdict: str
    detail: str
    model: TrainedModel

    @property
    def ok(self) -> bool:
        return self.verdict != "different"


@dataclass(eq=False)  # identity: a worker is one process
class _Worker:
    process: subprocess.Popen[bytes]
    environment: dict[str, Any] = field(default_factory=dict)
    owner: object | None = None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class TrainingPool:
    """Up to ``size`` warm training processes (see the module docstring)."""

    def __init__(self, *, size: int = 2, coretype: str | None = None) -> None:
        if size < 1:
            raise ValueError("a training pool needs at least one worker")
        self.size = size
        self.coretype = coretype
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._starting = 0
        self._closed = False
        self._stopped_owners: list[weakref.ref[object]] = []  # owners need not be hashable
        self._changed = threading.Condition()

    # ------------------------------------------------------------------ jobs

    def train(
        self,
        dataset: DatasetFile,
        request: Mapping[str, Any],
        *,
        time_limit: float,
        memory_limit: int,
        owner: object | None = None,
    ) -> TrainedModel:
        """Train as :func:`ml.training.train` would with ``request``'s keyword arguments
        (``algorithm``, ``target``, ``features``, ``params``, ``test_size``, ``seed``)."""
        job = {"op": "train", "dataset": dataset.to_json(), "request": dict(request)}
        _, blobs = self._run(job, [], time_limit, memory_limit, owner)
        return _trained(blobs[0], blobs[1])

    def retrain(
        self,
        dataset: DatasetFile,
        model_bytes: bytes,
        model_hash: str,
        metadata_bytes: bytes,
        *,
        time_limit: float,
        memory_limit: int,
        owner: object | None = None,
    ) -> Retrained:
        """Retrain from ``metadata_bytes`` and judge the result against the registered model
        (:func:`ml.reproduce.judge_retrain`)."""
        job = {"op": "retrain", "dataset": dataset.to_json(), "model_hash": model_hash}
        header, blobs = self._run(
            job, [model_bytes, metadata_bytes], time_limit, memory_limit, owner
        )
        reproduction = header["reproduction"]
        return Retrained(
            str(reproduction["verdict"]), str(reproduction["detail"]), _trained(*blobs)
        )

    def _run(
        self,
        job: dict[str, Any],
        blobs: list[bytes],
        time_limit: float,
        memory_limit: int,
        owner: object | None,
    ) -> tuple[dict[str, Any], list[bytes]]:
        worker = self._acquire(owner)
        healthy = False
        try:
            assert worker.process.stdin is not None and worker.process.stdout is not None
            try:
                _wire.write(worker.process.stdin, {**job, "memory_limit": memory_limit}, blobs)
                answer, results = _wire.read(
                    worker.process.stdout.fileno(), time.monotonic() + time_limit
                )
            except _wire.WireTimeout:
                raise TrainingLimitExceeded(
                    limit="training_time_limit",
                    maximum=time_limit,
                    detail=f"it ran for more than {time_limit:g} s",
                ) from None
            except (_wire.WireClosed, OSError, ValueError):
                raise TrainingInterrupted(self._why_ended(worker)) from None
            if answer.get("out_of_memory"):
                raise TrainingLimitExceeded(
                    limit="max_memory_bytes",
                    maximum=memory_limit,
                    detail=f"it needed more than {memory_limit:,} bytes of memory",
                )
            healthy = True
            if not answer.get("ok"):
                raise _wire.error_from_json(answer.get("error") or {})
            return answer, results
        finally:
            self._release(worker, healthy)

    def _why_ended(self, worker: _Worker) -> str:
        try:  # its pipe closed: it has exited or is about to
            code = worker.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        if self._closed or worker.owner is _CANCELLED:
            return "the service is stopping; nothing was registered, send the request again"
        if code is not None and code < 0:
            return (
                f"the training process was killed by signal {-code} (out of memory, or a "
                "crash); nothing was registered"
            )
        return f"the training process ended unexpectedly (exit status {code})"

    # ------------------------------------------------------------------ workers

    def warm(self) -> None:
        """Start every worker now, in the background, so the first jobs do not wait."""

        def start_all() -> None:
            for _ in range(self.size):
                with self._changed:
                    if self._closed or len(self._idle) + len(self._busy) + self._starting >= (
                        self.size
                    ):
                        return
                    self._starting += 1
                self._add(self._spawn_or_none())

        threading.Thread(target=start_all, name="training-warm", daemon=True).start()

    def cancel(self, owner: object) -> None:
        """Stop every running job of ``owner`` and refuse its later ones (their callers get
        TrainingInterrupted; ``owner`` is held by weak reference): a request that reaches the
        pool after its service was asked to stop must not start a training that the shutdown
        would then cut off without an answer."""
        with self._changed:
            self._stopped_owners = [r for r in self._stopped_owners if r() is not None]
            self._stopped_owners.append(weakref.ref(owner))
            doomed = [w for w in self._busy if w.owner is owner]
            for worker in doomed:
                worker.owner = _CANCELLED
        for worker in doomed:
            if worker.process.poll() is None:
                worker.process.kill()

    def close(self) -> None:
        """Stop every worker; running jobs answer TrainingInterrupted, new ones are refused."""
        with self._changed:
            self._closed = True
            workers = [*self._idle, *self._busy]
            self._idle.clear()
            self._changed.notify_all()
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.kill()
        for worker in workers:
            worker.process.wait()

    def environment(self) -> dict[str, Any]:
        """The numeric environment the workers train in (starts one if none is running)."""
        worker = self._acquire(None)
        try:
            return dict(worker.environment)
        finally:
            self._release(worker, True)

    def _acquire(self, owner: object | None) -> _Worker:
        with self._changed:
            while True:
                if self._closed or self._stopped(owner):
                    raise TrainingInterrupted("the service is stopping; send the request again")
                if self._idle:
                    worker = self._idle.pop()
                    break
                if len(self._busy) + self._starting < self.size:
                    self._starting += 1
                    worker = None
                    break
                self._changed.wait()
        if worker is None:
            try:
                worker = self._spawn()
            finally:
                with self._changed:
                    self._starting -= 1
                    self._changed.notify_all()
        with self._changed:
            if self._closed or self._stopped(owner):
                if self._closed:
                    worker.kill()
                else:  # the pool serves other owners still
                    self._idle.append(worker)
                    self._changed.notify_all()
                raise TrainingInterrupted("the service is stopping; send the request again")
            worker.owner = owner
            self._busy.add(worker)
        return worker

    def _stopped(self, owner: object | None) -> bool:
        return owner is not None and any(r() is owner for r in self._stopped_owners)

    def _release(self, worker: _Worker, healthy: bool) -> None:
        with self._changed:
            self._busy.discard(worker)
            keep = healthy and not self._closed and worker.owner is not _CANCELLED
            if keep and worker.process.poll() is None:
                worker.owner = None
                self._idle.append(worker)
                self._changed.notify_all()
                return
            self._changed.notify_all()
        worker.kill()

    def _add(self, worker: _Worker | None) -> None:
        with self._changed:
            self._starting -= 1
            if worker is not None and not self._closed:
                self._idle.append(worker)
            elif worker is not None:
                worker.kill()
            self._changed.notify_all()

    def _spawn_or_none(self) -> _Worker | None:
        try:
            return self._spawn()
        except TrainingInterrupted:
            return None

    def _spawn(self) -> _Worker:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        env["MKL_NUM_THREADS"] = "1"
        if self.coretype:
            env["OPENBLAS_CORETYPE"] = self.coretype
        process = subprocess.Popen(
            [sys.executable, "-m", "ml._worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,  # the service's Ctrl-C is the service's to handle
        )
        worker = _Worker(process)
        try:
            assert process.stdout is not None
            ready, _ = _wire.read(process.stdout.fileno(), time.monotonic() + _START_TIMEOUT)
        except (_wire.WireTimeout, _wire.WireClosed, ValueError):
            worker.kill()
            raise TrainingInterrupted("a training process could not be started") from None
        worker.environment = dict(ready.get("environment") or {})
        return worker


_CANCELLED = object()
_shared: dict[tuple[int, str | None], TrainingPool] = {}
_shared_lock = threading.Lock()


def shared_pool(*, size: int, coretype: str | None = None) -> TrainingPool:
    """The process's pool for this size and kernel set, made on first use and stopped at exit.

    Why shared: workers are processes that take a second each to start; every service opened
    in one process (tests open hundreds) uses the same warm ones, and :meth:`TrainingPool.cancel`
    stops one service's jobs without touching another's."""
    with _shared_lock:
        pool = _shared.get((size, coretype))
        if pool is None or pool._closed:
            pool = _shared[(size, coretype)] = TrainingPool(size=size, coretype=coretype)
        return pool


@atexit.register
def _close_shared() -> None:
    for pool in list(_shared.values()):
        pool.close()


def _trained(model_bytes: bytes, metadata_bytes: bytes) -> TrainedModel:
    """A :class:`TrainedModel` rebuilt from the files a worker sent (no fitted estimator)."""
    from ml.training import TrainedModel

    metadata = json.loads(metadata_bytes)
    return TrainedModel(
        algorithm=metadata["algorithm"],
        task=metadata["task"],
        features=tuple(metadata["features"]),
        target=metadata["target"],
        model_bytes=model_bytes,
        model_hash=sha256_bytes(model_bytes),
        metadata_bytes=metadata_bytes,
        metadata_hash=sha256_bytes(metadata_bytes),
        metrics=metadata["metrics"],
        dataset_hashes=tuple(from_hex(d["content_hash"]) for d in metadata["datasets"]),
        estimator=None,
    )

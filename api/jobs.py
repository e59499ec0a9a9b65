"""Expensive work (retraining a model, re-running a prediction, verifying receipts in bulk) in
one bounded pool, so that however many callers ask, the service does a fixed amount of it.

:class:`WorkPool` runs at most ``expensive_workers`` jobs at once and lets
``expensive_queue`` more wait; past that it refuses with 429 and a ``Retry-After`` estimated
from how long recent jobs took. A route uses it in one of two ways:

* :meth:`WorkPool.run`: the request waits for its job and answers its result (a single
  retrain or re-run, which takes seconds);
* :meth:`WorkPool.submit`: the request answers 202 with a :class:`Job` at once, and the caller
  polls ``GET /v1/jobs/{id}`` for its state and progress (``done`` of ``total``), then its
  result (bulk verification).

Either way the caller needs at least an auditor key, even while public reads are open
(:func:`~api.auth.require`): expensive work is never anonymous. Jobs live in memory: a
restart forgets them, and a caller asks again (the work is deterministic). With a shared
database (``PROVENANCE_DATABASE_URL``), a :class:`JobBook` also keeps each submitted job's
public view, written on every change of state (progress at most once a second), so that any
replica answers a poll (:mod:`api.pg_jobs`).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from api.auth import require
from api.keys import KeyInfo
from api.problems import PROBLEM_BASE
from api.problems import _from_exception as problem_for
from api.ratelimit import TooManyRequests

__all__ = ["Job", "JobBook", "JobState", "WorkPool"]

log = logging.getLogger("provenance.api")
T = TypeVar("T")
JobState = Literal["queued", "running", "done", "failed"]
KEEP_FINISHED = 256  # finished jobs kept for polling, the oldest dropped first
_RECENT = 20  # durations averaged for Retry-After
_PROGRESS_EVERY = 1.0  # seconds between two progress writes to a JobBook


class JobBook(Protocol):
    """Where submitted jobs' public views are kept for other replicas (``api.pg_jobs``)."""

    def save(self, owner: str | None, view: dict[str, Any]) -> None: ...

    def load(self, job_id: str) -> tuple[str | None, dict[str, Any]] | None: ...


@dataclass
class Job:
    """One unit of expensive work: its state, its progress, then its result or its problem."""

    job_id: str
    kind: str
    owner: str | None
    state: JobState = "queued"
    done: int = 0
    total: int | None = None
    result: Any = None
    problem: dict[str, Any] | None = None
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _book: JobBook | None = field(default=None, repr=False)
    _saved_at: float = field(default=0.0, repr=False)

    def progress(self, done: int, total: int | None = None) -> None:
        """Report progress from inside the work: ``done`` of ``total`` items."""
        with self._lock:
            self.done = done
            if total is not None:
                self.total = total
            due = self._book is not None and time.monotonic() - self._saved_at > _PROGRESS_EVERY
        if due:
            self.save()

    def save(self) -> None:
        """Write the job's view to its book, if it has one (a failure there is logged: the job
        goes on, and its starter can still poll the replica that runs it)."""
        if self._book is None:
            return
        self._saved_at = time.monotonic()
        try:
            self._book.save(self.owner, self.view())
        except Exception:
            log.warning("job %s: its state could not be shared", self.job_id, exc_info=True)

    @classmethod
    def from_view(cls, owner: str | None, view: dict[str, Any]) -> Job:
        """A job as another replica wrote it (see :meth:`view`)."""
        return cls(
            job_id=view["id"],
            kind=view["kind"],
            owner=owner,
            state=view["state"],
            done=view["progress"]["done"],
            total=view["progress"]["total"],
            result=view["result"],
            problem=view["problem"],
            created_at=view["created_at"],
            finished_at=view["finished_at"],
        )

    def view(self) -> dict[str, Any]:
        """A consistent copy of the job's public fields."""
        with self._lock:
            return {
                "id": self.job_id,
                "kind": self.kind,
                "state": self.state,
                "progress": {"done": self.done, "total": self.total},
                "result": self.result,
                "problem": self.problem,
                "created_at": self.created_at,
                "finished_at": self.finished_at,
            }


class WorkPool:
    """At most ``workers`` jobs at once and ``queue`` more waiting; past that, 429."""

    def __init__(self, workers: int, queue: int, *, book: JobBook | None = None) -> None:
        self.workers, self.queue = workers, queue
        self._book = book
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="expensive")
        self._lock = threading.Lock()
        self._admitted = 0
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._durations: list[float] = []

    @property
    def admitted(self) -> int:
        """Jobs running or waiting now."""
        with self._lock:
            return self._admitted

    def run(self, kind: str, key: KeyInfo | None, work: Callable[[Job], T]) -> T:
        """Run ``work`` in the pool and wait for it: its result, or its exception raised here."""
        _, future = self._start(kind, key, work, keep=False)
        return future.result()

    def submit(self, kind: str, key: KeyInfo | None, work: Callable[[Job], Any]) -> Job:
        """Start ``work`` in the pool and return its job at once; its result must be JSON."""
        job, _ = self._start(kind, key, work, keep=True)
        return job

    def get(self, job_id: str, key: KeyInfo | None) -> Job | None:
        """The job, if ``key`` started it (or is an admin key); else None, as if unknown."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None and key is not None and self._book is not None:
            found = self._book.load(job_id)  # started by another replica?
            job = None if found is None else Job.from_view(*found)
        if job is None or key is None:
            return None
        return job if key.role == "admin" or job.owner == key.key_id else None

    def _start(
        self, kind: str, key: KeyInfo | None, work: Callable[[Job], T], *, keep: bool
    ) -> tuple[Job, Future[T]]:
        info = require(key, "auditor")
        with self._lock:
            if self._admitted >= self.workers + self.queue:
                raise TooManyRequests(
                    f"{self._admitted} expensive jobs are running or waiting, at most "
                    f"{self.workers + self.queue}; retry later",
                    retry_after=self._retry_after(),
                    limit="expensive_queue",
                )
            self._admitted += 1
            job = Job(secrets.token_hex(8), kind, info.key_id, _book=self._book if keep else None)
            if keep:
                self._jobs[job.job_id] = job
                self._forget_finished()
        job.save()  # visible to every replica before its id is handed out
        try:
            future = self._executor.submit(self._execute, job, work, keep)
        except BaseException:
            with self._lock:
                self._admitted -= 1
            raise
        return job, future

    def _execute(self, job: Job, work: Callable[[Job], T], keep: bool) -> T:
        started = time.monotonic()
        with job._lock:
            job.state = "running"
        job.save()
        try:
            result = work(job)
        except Exception as exc:
            with job._lock:
                job.state, job.finished_at = "failed", time.time()
                if keep:
                    problem = problem_for(exc)
                    job.problem = {
                        "type": PROBLEM_BASE + problem.slug,
                        "status": problem.status,
                        "detail": problem.detail,
                    }
            job.save()
            raise
        else:
            with job._lock:
                job.state, job.finished_at = "done", time.time()
                if keep:
                    dump = getattr(result, "model_dump", None)
                    job.result = dump(mode="json") if dump is not None else result
            job.save()
            return result
        finally:
            with self._lock:
                self._admitted -= 1
                self._durations = [*self._durations[-(_RECENT - 1) :], time.monotonic() - started]

    def _retry_after(self) -> float:
        """Seconds until a place is likely free: the recent mean duration per worker."""
        if not self._durations:
            return 1.0
        mean = sum(self._durations) / len(self._durations)
        return min(60.0, mean * (self._admitted - self.workers + 1) / self.workers)

    def _forget_finished(self) -> None:
        finished = [i for i, j in self._jobs.items() if j.state in ("done", "failed")]
        for job_id in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job_id]

    def close(self) -> None:
        """Let running jobs finish, start no waiting one."""
        self._executor.shutdown(wait=True, cancel_futures=True)

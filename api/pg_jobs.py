"""Jobs of expensive work in PostgreSQL, so that a caller polling ``GET /v1/jobs/{id}`` is
answered by whichever replica the load balancer picks, not only by the one running the job.

The running replica keeps its :class:`api.jobs.Job` in memory as before and writes the job's
public view here (a ``JobBook`` of :mod:`api.jobs`); any other replica reads it. What is not
built: a job whose replica dies stays at its last written state (its ``updated_at`` says how
old that is); the caller starts it again, as after a restart of a single service.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ledger.storage.postgres import PgConnections

__all__ = ["PgJobBook"]


class PgJobBook:
    """Jobs' public views by id, with their owner (the API key that started them)."""

    def __init__(self, db: PgConnections) -> None:
        self._db = db

    def save(self, owner: str | None, view: dict[str, Any]) -> None:
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO jobs (job_id, owner, view, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (job_id) DO UPDATE SET view = excluded.view, "
                "updated_at = excluded.updated_at",
                (view["id"], owner, json.dumps(view), time.time()),
            )

    def load(self, job_id: str) -> tuple[str | None, dict[str, Any]] | None:
        """(owner, view) of the job, or None."""
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT owner, view FROM jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
        return None if row is None else (row["owner"], json.loads(row["view"]))

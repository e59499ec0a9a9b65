"""Jobs of expensive work (``api/jobs.py``): their state, progress, then result or problem."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from api.schemas._common import _Public

__all__ = ["JobProblemPublic", "JobProgressPublic", "JobPublic"]


class JobProgressPublic(_Public):
    done: int = Field(ge=0, description="items done so far")
    total: int | None = Field(None, ge=0, description="items in all, once known")


class JobProblemPublic(_Public):
    """Why a job failed: the problem its request would have answered (RFC 9457 fields)."""

    type: str
    status: int
    detail: str


class JobPublic(_Public):
    """A job: poll ``GET /v1/jobs/{id}`` until ``state`` is ``done`` (``result``) or
    ``failed`` (``problem``)."""

    id: str = Field(pattern=r"^[0-9a-f]{16}$")
    kind: str
    state: Literal["queued", "running", "done", "failed"]
    progress: JobProgressPublic
    result: Any = Field(None, description="the answer the work gave, once done")
    problem: JobProblemPublic | None = None
    created_at: float = Field(description="unix seconds")
    finished_at: float | None = Field(None, description="unix seconds")

"""Jobs of expensive work, polled by the caller that started them (``api/jobs.py``)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import AuditorAccess, JobIdPath, WorkDep
from api.problems import Problem
from api.schemas.jobs import JobPublic

__all__ = ["router"]

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobPublic)
def get_job(work: WorkDep, key: AuditorAccess, job_id: JobIdPath) -> JobPublic:
    """A job's state and progress, then its result or its problem (its starter or an admin)."""
    job = work.get(job_id, key)
    if job is None:
        raise Problem(404, "unknown-job", f"no job {job_id} of yours is known")
    return JobPublic.model_validate(job.view())

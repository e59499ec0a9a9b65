"""Jobs of expensive work (bulk verification), shared so that any replica answers a poll.

The replica running a job writes its public view (the JSON ``GET /v1/jobs/{id}`` answers) on
every change of state and, at most once a second, of progress; the others read it.

Revision ID: r0002
Revises: r0001
"""

from __future__ import annotations

from alembic import op

revision = "r0002"
down_revision = "r0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE jobs (job_id TEXT PRIMARY KEY, owner TEXT, view TEXT NOT NULL, "
        "updated_at DOUBLE PRECISION NOT NULL)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE jobs")

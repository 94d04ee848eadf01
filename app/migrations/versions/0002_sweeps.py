"""Sweeps: a batch of ordinary jobs, one per planned run, addressed by content (run key).

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # New tables only: the jobs table is untouched, so existing queues migrate without a rewrite.
    op.create_table(
        "sweeps",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("n_runs", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "sweep_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("sweep_id", sa.String(32), sa.ForeignKey("sweeps.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("run_key", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id")),
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("student", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("sweep_id", "run_key", name="uq_sweep_runs_sweep_run_key"),
    )
    op.create_index("ix_sweep_runs_sweep_id", "sweep_runs", ["sweep_id"])
    op.create_index("ix_sweep_runs_run_key", "sweep_runs", ["run_key"])
    op.create_index("ix_sweep_runs_job_id", "sweep_runs", ["job_id"])


def downgrade() -> None:
    op.drop_table("sweep_runs")
    op.drop_table("sweeps")
